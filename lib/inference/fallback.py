"""The fallback submission, and the steps after it that may replace it only when they all succeed.

The inference kernel writes a submission of TF-IDF neighbours and identical titles (`fallback_matches`) before any
model runs. Each later step runs through `Steps.run`: a failure is printed and recorded in the status file
({"fallback": true, "error": ...}). In the commit run it then stops the notebook with the error (shown once, as the
cell's error), so that it is seen before submitting; in the scoring rerun its traceback is printed and every later step
is skipped, so that the fallback submission stays and the kernel goes on to its end. `Steps.finish` records the
outcome.
"""

import json
import traceback
from pathlib import Path

from lib.data import text
from lib.data.submission import MAX_MATCHES
from lib.inference.stopwatch import Stopwatch, sparse_products
from lib.matching import pairs
from lib.neighbours.sparse import sparse_neighbors

STATUS_FILE = "run_status.json"


def fallback_matches(titles: list[str], corpus: list[str], threshold: float, stopwatch: Stopwatch) -> list[list[int]]:
    """Each posting's matches (row numbers) by TF-IDF similarity of its normalised title over `threshold` (the idf
    from `corpus`), or an identical title; timed as the stage "fallback submission" (a sparse search)."""
    if not titles:
        return []
    with stopwatch.stage("fallback submission", len(titles), "sparse") as details:
        x = text.tfidf_vectors(titles, corpus)
        details["flops"] = sparse_products(x)
        c = pairs.candidates({"tfidf": sparse_neighbors(x, k=min(MAX_MATCHES, len(titles)))}, {"title": titles})
        rules = {"components": {"tfidf": {"threshold": threshold}}, "groups": ["title"]}
        return pairs.to_lists(c, pairs.predict(c, rules))


class Steps:
    """The steps after the fallback submission, in the commit run (`commit_run`) or the scoring rerun; the outcome is
    written to `status_file`."""

    def __init__(self, commit_run: bool, status_file: Path | str = STATUS_FILE):
        self.commit_run, self.status_file = commit_run, Path(status_file)
        self.status = {"fallback": False}

    def run(self, step, *args, **kwargs):
        """`step(*args, **kwargs)`, or None when an earlier step failed. A failure is recorded and printed; the commit
        run raises it, the scoring rerun prints its traceback and returns None."""
        if self.status["fallback"]:
            print(f"skipped {step.__name__}: a step failed, the fallback submission stays")
            return None
        try:
            return step(*args, **kwargs)
        except Exception as error:
            self.status = {"fallback": True, "error": f"{type(error).__name__}: {error}"}
            self.write_status()
            print(f"FAILED, the fallback submission (TF-IDF and identical titles) is kept: {self.status['error']}")
            if self.commit_run:
                print("the commit run stops here: fix the plan before submitting", end=" ")
                print("(the scoring rerun would keep the fallback)")
                raise
            traceback.print_exc()
            return None

    def finish(self) -> dict:
        """Write the status file: whether the fallback submission stays, and why; returns it."""
        self.write_status()
        return self.status

    def write_status(self) -> None:
        """The status, as JSON, in the status file."""
        with open(self.status_file, "w") as file:
            json.dump(self.status, file, indent=2)
