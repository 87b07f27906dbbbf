"""The GPU check on a CUDA machine and the offline bundle it needs where that machine has no network."""
