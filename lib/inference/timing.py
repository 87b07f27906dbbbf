"""Time budget: each inference stage's measured time, projected to the 70,000-row hidden test and to a T4.

A stage records its rows, its seconds, how its cost grows with the rows (1: per posting, e.g. embeddings;
2: every pair, e.g. exact neighbour search) and its rows on Kaggle's hidden rerun: 70,000 for the test postings,
for train rows the same share of the 34,250 training postings (evaluation on a fold). Device stages (model forward
passes, dense neighbour search) run on the GPU on Kaggle; host stages (reading images, TF-IDF, rules) on its CPU.

A pair-wise stage is also timed on the first half of its rows, and projected by the fit of a * n + b * n^2 to the
two times: at a few hundred rows the per-row overheads dwarf the pair scan, which a plain n^2 would inflate.

The T4 projection of a run made elsewhere divides device stages by how much faster a T4 multiplies matrices than
this device, as measured by `device_tflops`: a T4 sustains about 24 TFLOPS on float16 products (NVIDIA's forum,
cuBLAS 4096^3 on a power-capped T4: forums.developer.nvidia.com/t/about-gpu-peak-performance/264462; the datasheet
peak of 65 is not sustained). Host stages are assumed no faster on Kaggle than where they were measured.
"""

import json
import resource
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from lib.data.competition import HIDDEN_TEST_ROWS

KAGGLE_TRAIN_ROWS = 34250
T4_TFLOPS = 24.0
GPU_LIMIT_SECONDS = 2 * 3600
PAIRWISE_FIT_ROWS = 64


@dataclass
class Stage:
    """One timed stage of a run."""

    name: str
    rows: int
    seconds: float
    growth: int  # the power of the rows its cost grows with
    where: str  # "device" or "host"
    target_rows: int  # its rows on the hidden rerun
    half_seconds: float | None = None  # a pair-wise stage's time on the first half of its rows

    def projected(self) -> float:
        """Seconds this stage would take on its rows of the hidden rerun, on the same machine."""
        if self.half_seconds is None:
            return self.seconds * (self.target_rows / max(self.rows, 1)) ** self.growth
        pairs = max(2 * (self.seconds - 2 * self.half_seconds), 0.0)  # b * n^2
        return (self.seconds - pairs) * self.target_rows / self.rows + pairs * (self.target_rows / self.rows) ** 2


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
    def stage(self, name: str, rows: int, growth: int = 1, where: str = "device"):
        start = time.perf_counter()
        yield
        seconds = time.perf_counter() - start
        self.stages.append(Stage(f"{self.phase_name}: {name}", rows, seconds, growth, where, self.target_rows))

    def pairwise(self, name: str, rows: int, run, where: str = "device"):
        """`run(rows)`, timed, as a stage whose cost grows with the square of the rows; `run(rows // 2)` is timed
        first (when there are enough rows to tell overheads from pairs) for the projection's fit."""
        half = None
        if rows >= PAIRWISE_FIT_ROWS:
            start = time.perf_counter()
            run(rows // 2)
            half = time.perf_counter() - start
        with self.stage(name, rows, growth=2, where=where):
            result = run(rows)
        self.stages[-1].half_seconds = half
        return result


def hidden_rerun(stages: list[Stage], test_measured: bool) -> list[Stage]:
    """The stages of the hidden rerun: as measured when the test rows were many, else (a commit run's 3 test rows
    say nothing of 70,000) the evaluation stages standing for the test stages too."""
    if test_measured:
        return stages
    kept = [stage for stage in stages if not stage.name.startswith("test:")]
    evaluated = [stage for stage in stages if stage.name.startswith("evaluation:")]
    as_test = [
        replace(s, name=s.name.replace("evaluation:", "test (as evaluation):"), target_rows=HIDDEN_TEST_ROWS)
        for s in evaluated
    ]
    return kept + as_test


def device_tflops(device: torch.device, size: int = 1024, seconds: float = 0.3) -> float:
    """This device's measured matrix product rate, TFLOPS (float16 on CUDA, float32 on the CPU)."""
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    a = torch.randn(size, size, device=device, dtype=dtype)
    products, start = 0, time.perf_counter()
    while products == 0 or time.perf_counter() - start < seconds:
        (a @ a).sum().item()  # .item() waits for the device
        products += 1
    return 2 * size**3 * products / (time.perf_counter() - start) / 1e12


def t4_seconds(stage: Stage, tflops: float) -> float:
    """Projected seconds of a stage on its hidden-rerun rows on a T4, from its run on a device of `tflops`."""
    speedup = T4_TFLOPS / tflops if stage.where == "device" else 1.0
    return stage.projected() / speedup


def table(stages: list[Stage], tflops: float) -> str:
    """The stages with their measured and projected times, as text."""
    header = ["stage", "where", "rows", "seconds", "rerun rows", "projected", "on a T4"]
    lines = ["{:<44} {:<6} {:>6} {:>8} {:>10} {:>9} {:>8}".format(*header)]
    for s in stages:
        cells = [s.name, s.where, s.rows, s.seconds, s.target_rows, s.projected(), t4_seconds(s, tflops)]
        lines.append("{:<44} {:<6} {:>6} {:>8.2f} {:>10} {:>9.0f} {:>8.0f}".format(*cells))
    total = [sum(s.seconds for s in stages), sum(s.projected() for s in stages)]
    total.append(sum(t4_seconds(s, tflops) for s in stages))
    lines.append(
        "{:<44} {:<6} {:>6} {:>8.2f} {:>10} {:>9.0f} {:>8.0f}".format("total", "", "", total[0], "", *total[1:])
    )
    lines.append(f"(this device {tflops:.2f} TFLOPS measured, a T4 {T4_TFLOPS:.0f}; cost ~ rows or rows^2 per stage)")
    return "\n".join(lines)


def peak_memory_gb(device: torch.device) -> dict[str, float]:
    """The peak resident memory of this process so far, and the peak memory allocated on a CUDA device, in GB."""
    peaks = {"host": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}  # kilobytes on Linux
    if device.type == "cuda":
        peaks["device"] = torch.cuda.max_memory_allocated(device) / 2**30
    return peaks


def write_timings(path: Path, stages: list[Stage], tflops: float, device: torch.device) -> None:
    """timings.json: the stages, the device, its measured rate and peak memory, the T4 projection of the rerun."""
    projected = sum(t4_seconds(stage, tflops) for stage in stages)
    report = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "peak_memory_gb": peak_memory_gb(device),
        "tflops": tflops,
        "stages": [asdict(stage) for stage in stages],
        "t4_seconds_at_hidden_rows": projected,
    }
    Path(path).write_text(json.dumps(report, indent=2) + "\n")


def read_timings(path: Path) -> tuple[list[Stage], float]:
    """The stages and the device rate of a timings.json."""
    report = json.loads(Path(path).read_text())
    return [Stage(**stage) for stage in report["stages"]], report["tflops"]
