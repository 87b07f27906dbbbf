"""The stopwatch of a run: each stage timed as it happens, with what its projection needs (lib.inference.time_budget).

A stage records its name (prefixed by its phase), its kind, its rows, its seconds and its rows on Kaggle's hidden
rerun (70,000 for the test postings; for train rows the same share of Kaggle's train), and by kind its growth with the
rows, its products, its precision, its models or its loader workers. It also records the CPU time it used and the CPU
time other processes took meanwhile, so that a projection made on a busy machine counts the stage's own work
(`Stage.quiet_seconds`).
"""

import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from lib.data.competition import HIDDEN_TEST_ROWS
from lib.devices import cpu_load


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
        cpu_seconds: the CPU time this process used in the stage, all its threads (None where not measured).
        others_seconds: the CPU time other processes used meanwhile, per CPU of the machine.
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
    cpu_seconds: float | None = None
    others_seconds: float = 0.0

    @property
    def scale(self) -> float:
        return self.target_rows / max(self.rows, 1)

    @property
    def quiet_seconds(self) -> float:
        """The stage's seconds without the other processes' load (`quiet`); a forward stage keeps its wall time, as its
        loader workers are other processes."""
        return self.seconds if self.kind == "forward" else quiet(self.seconds, self.cpu_seconds, self.others_seconds)


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
        with measured() as times:
            yield details
        seconds = times.pop("seconds")
        stage = Stage(f"{self.phase_name}: {name}", kind, rows, seconds, self.target_rows, **details, **times)
        self.stages.append(stage)
        busy = f" ({stage.quiet_seconds:.1f} s without the other processes' load)" if load_shown(stage) else ""
        print(f"{stage.name} ({rows} rows): {seconds:.1f} s{busy}", flush=True)


@contextmanager
def measured():
    """Time the block: the dict it yields gets the wall `seconds` and the block's CPU load (lib.devices.cpu_load)."""
    times, start = {}, time.perf_counter()
    with cpu_load() as load:
        yield times
    times |= {"seconds": time.perf_counter() - start, **load}


def quiet(seconds: float, cpu_seconds: float | None = None, others_seconds: float = 0.0) -> float:
    """Seconds of work on this machine without the other processes' load, from its wall `seconds`, its own
    `cpu_seconds` and the others' `others_seconds` per CPU (`measured`): the wall time where the machine was its own
    or the load is not known; under load the larger of its CPU time (at most the wall time: a single thread's work)
    and its wall time less the others' share (the work of threads that would have run in parallel)."""
    if cpu_seconds is None:
        return seconds
    return max(min(seconds, cpu_seconds), seconds - others_seconds)


def load_shown(stage: Stage) -> bool:
    """Whether other processes' load took a tenth or more of the stage's wall time (and at least 0.1 s)."""
    return stage.seconds - stage.quiet_seconds >= max(0.1 * stage.seconds, 0.1)


def scan_flops(rows: int, dim: int) -> float:
    """Floating-point operations of a self-search's products: the upper triangle of rows x rows dot products."""
    return float(rows) * rows * dim


def sparse_products(x) -> float:
    """The products of a sparse self-search x @ x.T: each column's nonzeros squared, summed."""
    return float((x.getnnz(axis=0).astype(np.float64) ** 2).sum())
