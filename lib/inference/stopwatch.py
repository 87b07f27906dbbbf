"""The stopwatch of a run: each stage timed as it happens, with what its projection needs (lib.inference.time_budget).

A stage records its name (prefixed by its phase), its kind, its rows, its seconds and its rows on Kaggle's hidden
rerun (70,000 for the test postings; for train rows the same share of Kaggle's train), and by kind its growth with the
rows, its products, its precision, its models or its loader workers.
"""

import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from lib.data.competition import HIDDEN_TEST_ROWS


@dataclass
class Stage:
    """One timed stage of a run.

    Attributes:
        kind: "host", "decode", "forward", "matmul" or "sparse" (lib.inference.time_budget).
        target_rows: its rows on the hidden rerun.
        growth: a host stage's power of the rows its cost grows with.
        flops: a matmul stage's floating-point operations of products at `rows`, a sparse stage's products.
        dtype: a matmul stage's scan precision, a forward stage's compute precision here.
        parts: a forward stage's models ("<backbone>@<image size>" for an image backbone, the folder name of a text
            model), whose cited rates make its T4 projection.
        workers: a decode stage's loader processes.
    """

    name: str
    kind: str
    rows: int
    seconds: float
    target_rows: int
    growth: int = 1
    flops: float = 0.0
    dtype: str = "float32"
    parts: list[str] = field(default_factory=list)
    workers: int = 1

    @property
    def scale(self) -> float:
        return self.target_rows / max(self.rows, 1)


class Stopwatch:
    """The stages of a run, timed as they happen, each in a phase that says its rows on the hidden rerun."""

    def __init__(self):
        self.stages: list[Stage] = []
        self.phase_name, self.target_rows = "test", HIDDEN_TEST_ROWS

    @contextmanager
    def phase(self, name: str, target_rows: int):
        """Stages inside are named `<name>: ...` and have `target_rows` on the hidden rerun (outside: the test's)."""
        self.phase_name, self.target_rows = name, target_rows
        try:
            yield
        finally:
            self.phase_name, self.target_rows = "test", HIDDEN_TEST_ROWS

    @contextmanager
    def stage(self, name: str, rows: int, kind: str = "host", **details):
        """Time the block as a stage, and print its time; `details` are the Stage's attributes of its kind (growth,
        flops, ...), and the block may add to them once it knows them (it gets the dict)."""
        start = time.perf_counter()
        yield details
        seconds = time.perf_counter() - start
        self.stages.append(Stage(f"{self.phase_name}: {name}", kind, rows, seconds, self.target_rows, **details))
        print(f"{self.stages[-1].name} ({rows} rows): {seconds:.1f} s", flush=True)


def scan_flops(rows: int, dim: int) -> float:
    """Floating-point operations of a self-search's products: the upper triangle of rows x rows dot products."""
    return float(rows) * rows * dim


def sparse_products(x) -> float:
    """The products of a sparse self-search x @ x.T: each column's nonzeros squared, summed."""
    return float((x.getnnz(axis=0).astype(np.float64) ** 2).sum())
