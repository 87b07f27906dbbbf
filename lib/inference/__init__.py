"""The plan (tuned config), the inference kernel's steps, the stopwatch and the time budget."""
