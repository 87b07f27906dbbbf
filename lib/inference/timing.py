"""Time budget: each inference stage timed once, projected by its kind to the 70,000-row hidden test on a T4.

A stage records its rows, its seconds and its rows on Kaggle's hidden rerun (70,000 for the test postings; for train
rows the same share of the 34,250 training postings). How it is projected depends on its kind:

- host: work of the CPU's main process (TF-IDF, rules, pair features, graph steps): its seconds times (N / n) ** growth
  (growth 2 for searches over pairs of postings, which overstates their per-row part), as fast on Kaggle as here.
- decode: reading and decoding images, timed on a sample in one process, spread over the loader's workers; on Kaggle's
  GPU machines over at most KAGGLE_CPUS of them (4 cores: Kaggle's notebook docs).
- forward: a model's forward passes. On a T4 by the cited throughput of its parts where one is known (CITED_RATES;
  an image backbone at another size scales by the pixels, as a convolutional net's work does), else by this device's
  measured matrix rate against the T4's (such small models are bound by memory and launches, not products: flagged).
  A frozen pretrained timm backbone of a plan is the part `<architecture>@<image size>`, as a checkpoint's image branch
  is; a CLIP or SigLIP model (image and text towers in one pass) has no cited rate here (no public T4 or RTX 3090
  throughput of the pair of towers was found), so it is projected by the TFLOPS ratio, flagged.
- matmul: a neighbour scan. Its products (`flops`, growing with rows^2) at the device's measured rate in the scan's
  precision, plus a per-row rest (the measured seconds less the products' share), linear in the rows. On a T4 the scan
  runs in float16 (lib.neighbours.knn.scan_dtype) at T4_TFLOPS["float16"].
- sparse: a TF-IDF neighbour search. Likewise: its sparse products (`flops`: the sum over terms of their document
  frequency squared, which grows with rows^2 as each frequency grows with the rows, but never past
  lib.data.text.PRODUCT_BUDGET: the vocabulary is cut to it) at the rate this machine measures for a sparse product
  (`sparse_rate`), plus a per-row rest; as fast on Kaggle as here.

The commit run refuses a plan whose hidden rerun projects over BUDGET_SHARE of the GPU limit on a T4 (`over_budget`,
`refuse_over_budget`), naming the largest stages; the scoring rerun only prints it, as its submission is written.

Cited figures:
- T4 matrix products: about 24 TFLOPS sustained in float16 (NVIDIA's forum, cuBLAS 4096^3 on a power-capped T4:
  forums.developer.nvidia.com/t/about-gpu-peak-performance/264462; the datasheet peak of 65 is not sustained); float32:
  3.5 TFLOPS, what ResNet-50's float32 inference sustains on a T4 (428 images/s x 8.2 GFLOP, below).
- ResNet-50 at 224 px, batch 64, PyTorch 21.03 NGC container (NVIDIA DeepLearningExamples,
  PyTorch/Classification/ConvNets/resnet50v1.5/README.md): T4 1165 images/s mixed precision (428 float32), V100 2984.
- Image backbones on an RTX 3090, AMP, torch 2.4 (timm, results/benchmark-infer-amp-nchw-pt240-cu124-rtx3090.csv,
  commit 7479d451), scaled to a T4 by ResNet-50's 1165 / 3219 at 224 px.
- all-MiniLM-L6-v2: 14,200 sentences/s on a V100 (sbert.net, pretrained models table), scaled by ResNet-50's
  1165 / 2984.
"""

import json
import os
import resource
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from lib.data.competition import HIDDEN_TEST_ROWS
from lib.data.text import PRODUCT_BUDGET

KAGGLE_TRAIN_ROWS = 34250
KAGGLE_CPUS = 4
GPU_LIMIT_SECONDS = 2 * 3600
BUDGET_SHARE = 0.8  # of GPU_LIMIT_SECONDS: the most a plan's hidden rerun may be projected to take on a T4; the rest
# is left for the projection's error (host stages are taken as fast on Kaggle as here)
T4_TFLOPS = {"float16": 24.0, "float32": 428 * 8.2e9 / 1e12}
T4_SCAN_DTYPE = "float16"
T4_PER_RTX3090 = 1165 / 3219.06
T4_PER_V100 = 1165 / 2984
RTX3090_IMAGES_PER_SECOND = {  # (backbone, image size): images/s, timm's table named above
    ("resnet18", 224): 9260.29,
    ("resnet34", 224): 5454.89,
    ("resnet50", 224): 3219.06,
    ("efficientnet_b0", 224): 6924.93,
    ("efficientnet_b3", 288): 2184.31,
    ("efficientnet_b3", 320): 1851.55,
    ("tf_efficientnet_b3", 300): 1797.7,
    ("efficientnet_b4", 320): 1389.63,
    ("efficientnet_b4", 384): 937.43,
    ("tf_efficientnetv2_s", 300): 1604.9,
    ("tf_efficientnetv2_s", 384): 1069.37,
    ("eca_nfnet_l0", 224): 2572.54,
    ("eca_nfnet_l0", 288): 1542.25,
    ("eca_nfnet_l1", 256): 1214.94,
    ("eca_nfnet_l1", 320): 737.99,
    ("nfnet_l0", 224): 2566.01,
    ("convnext_tiny", 224): 3090.39,
    ("convnext_tiny", 288): 1920.23,
    ("convnext_small", 224): 1866.18,
}
V100_SENTENCES_PER_SECOND = {"all-minilm-l6-v2": 14200}
STAND_IN_PHASES = ("evaluation", "title plan")  # the rows a plan was evaluated or tuned on, the first preferred
MIN_TEST_ROWS = 100  # test rows that a projection to the hidden test may start from


@dataclass
class Stage:
    """One timed stage of a run.

    Attributes:
        kind: "host", "decode", "forward", "matmul" or "sparse" (module docstring).
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


def hidden_rerun(stages: list[Stage], test_rows: int) -> tuple[list[Stage], list[str]]:
    """The stages of the hidden rerun, and the test stages left out of it.

    With at least MIN_TEST_ROWS test rows, every stage as measured. Fewer (a commit run's 3, a small local test) say
    little of 70,000: each test stage is stood in for by its namesake on the rows the plan was evaluated on, or else
    tuned on (STAND_IN_PHASES); a test stage without one is left out and named, and so are the evaluation's own
    stages, which the rerun skips.
    """
    if test_rows >= MIN_TEST_ROWS:
        return stages, []
    measured = {}
    for phase in reversed(STAND_IN_PHASES):
        prefix = f"{phase}: "
        measured |= {s.name.removeprefix(prefix): (phase, s) for s in stages if s.name.startswith(prefix)}
    rerun, left_out = [], []
    for stage in stages:
        name = stage.name.removeprefix("test: ")
        if stage.name.startswith("test: ") and name in measured:
            phase, stand_in = measured[name]
            rerun.append(replace(stand_in, name=f"test (as {phase}): {name}", target_rows=HIDDEN_TEST_ROWS))
        elif stage.name.startswith("test: "):
            left_out.append(stage.name)
        elif not stage.name.startswith("evaluation: "):
            rerun.append(stage)
    return rerun, left_out


def projection_basis(test_rows: int, left_out: list[str]) -> str:
    """A line saying what the projection of the hidden rerun stands on."""
    if test_rows >= MIN_TEST_ROWS:
        return f"projected from the test's own {test_rows} rows"
    line = (
        f"test.csv's {test_rows} rows are too few to project from (under {MIN_TEST_ROWS}): each test stage is stood "
        "in for by its namesake on the plan's rows"
    )
    return line + (f"; left out, with none: {', '.join(left_out)}" if left_out else "")


def device_tflops(device: torch.device, dtype: torch.dtype, size: int = 1024, seconds: float = 0.3) -> float:
    """This device's measured rate of `dtype` matrix products, TFLOPS."""
    a = torch.randn(size, size, device=device).to(dtype)
    products, start = 0, time.perf_counter()
    while products == 0 or time.perf_counter() - start < seconds:
        (a @ a).float().sum().item()  # .item() waits for the device
        products += 1
    return 2 * size**3 * products / (time.perf_counter() - start) / 1e12


def sparse_rate(rows: int = 4000, columns: int = 2000, per_row: int = 12, seconds: float = 0.3) -> float:
    """This machine's rate of sparse products (scipy CSR x CSR^T, as the CPU's TF-IDF search), in 10^12 per second."""
    rng = np.random.default_rng(0)
    x = sp.random(rows, columns, density=per_row / columns, format="csr", random_state=rng, dtype=np.float32)
    transposed, products, runs, start = x.T.tocsr(), sparse_products(x), 0, time.perf_counter()
    while runs == 0 or time.perf_counter() - start < seconds:
        x @ transposed
        runs += 1
    return products * runs / (time.perf_counter() - start) / 1e12


def measured_rates(stages: list[Stage], device: torch.device) -> dict[str, float]:
    """This device's TFLOPS in each precision a matmul or forward stage used, and the sparse product rate ("sparse")
    where a sparse stage ran."""
    dtypes = {s.dtype for s in stages if s.kind in ("matmul", "forward")}
    rates = {dtype: device_tflops(device, getattr(torch, dtype)) for dtype in sorted(dtypes)}
    return rates | ({"sparse": sparse_rate()} if any(s.kind == "sparse" for s in stages) else {})


def nearest_rate(table: dict[tuple[str, int], float], backbone: str, size: int) -> float | None:
    """A table's images/s of the backbone at its size nearest `size`, scaled to `size` by the pixels, or None."""
    sizes = [s for b, s in table if b == backbone]
    if not sizes:
        return None
    nearest = min(sizes, key=lambda s: abs(s - size))
    return table[(backbone, nearest)] * (nearest / size) ** 2


def cited_rate(part: str) -> float | None:
    """A model part's cited T4 rate (images or titles per second), or None."""
    if part in V100_SENTENCES_PER_SECOND:
        return V100_SENTENCES_PER_SECOND[part] * T4_PER_V100
    backbone, _, size = part.partition("@")
    rate = nearest_rate(RTX3090_IMAGES_PER_SECOND, backbone, int(size)) if size.isdigit() else None
    return None if rate is None else rate * T4_PER_RTX3090


def products_and_rest(stage: Stage, tflops: float) -> tuple[float, float]:
    """A matmul or sparse stage's seconds of products at `tflops` (10^12 per second) and its per-row rest (measured
    here), at its own rows."""
    products = stage.flops / (tflops * 1e12)
    return products, max(stage.seconds - products, 0.0)


def product_growth(stage: Stage) -> float:
    """How many times its products a matmul or sparse stage computes at its rerun rows: the rows' ratio squared, for a
    sparse stage at most up to PRODUCT_BUDGET products."""
    growth = stage.scale**2
    return min(growth, PRODUCT_BUDGET / stage.flops) if stage.kind == "sparse" and stage.flops > 0 else growth


def projected(stage: Stage, rates: dict[str, float], cpus: int = os.cpu_count() or 1) -> float:
    """Seconds of the stage at its rerun rows on this machine (`rates`: measured_rates)."""
    if stage.kind in ("matmul", "sparse"):
        products, rest = products_and_rest(stage, rates[stage.dtype if stage.kind == "matmul" else "sparse"])
        return rest * stage.scale + products * product_growth(stage)
    if stage.kind == "decode":
        return stage.seconds / min(stage.workers, cpus) * stage.scale
    return stage.seconds * stage.scale ** (stage.growth if stage.kind == "host" else 1)


def t4_projection(stage: Stage, rates: dict[str, float]) -> tuple[float, str]:
    """Seconds of the stage at its rerun rows on Kaggle's T4 machine, and the basis of that figure."""
    if stage.kind == "matmul":
        _, rest = products_and_rest(stage, rates[stage.dtype])
        products = stage.flops * stage.scale**2 / (T4_TFLOPS[T4_SCAN_DTYPE] * 1e12)
        return rest * stage.scale + products, f"{T4_SCAN_DTYPE} products at {T4_TFLOPS[T4_SCAN_DTYPE]:.0f} TFLOPS"
    if stage.kind == "decode":
        return projected(stage, rates, KAGGLE_CPUS), f"{min(stage.workers, KAGGLE_CPUS)} workers"
    if stage.kind == "forward":
        cited = [cited_rate(part) for part in stage.parts]
        if cited and None not in cited:
            return sum(stage.target_rows / rate for rate in cited), "cited: " + " + ".join(stage.parts)
        ratio = rates[stage.dtype] / T4_TFLOPS["float16"]
        return projected(stage, rates) * ratio, "TFLOPS ratio (no cited rate: may be memory-bound)"
    return projected(stage, rates), "as here"


def table(stages: list[Stage], rates: dict[str, float]) -> str:
    """The stages with their measured and projected times, as text."""
    row = "{:<46} {:<7} {:>6} {:>8} {:>7} {:>9} {:>8}  {}"
    lines = [row.format("stage", "kind", "rows", "seconds", "rerun", "here", "T4", "T4 basis")]
    for s in stages:
        t4, basis = t4_projection(s, rates)
        lines.append(
            row.format(
                s.name,
                s.kind,
                s.rows,
                f"{s.seconds:.2f}",
                s.target_rows,
                f"{projected(s, rates):.0f}",
                f"{t4:.0f}",
                basis,
            )
        )
    here = sum(projected(s, rates) for s in stages)
    t4 = sum(t4_projection(s, rates)[0] for s in stages)
    lines.append(
        row.format(
            "total",
            "",
            "",
            f"{sum(s.seconds for s in stages):.2f}",
            "",
            f"{here:.0f}",
            f"{t4:.0f}",
            f"of the {GPU_LIMIT_SECONDS} s limit",
        )
    )
    measured = ", ".join(f"{dtype} {tflops:.3g}" for dtype, tflops in rates.items())
    measured = measured or "none needed"
    lines.append(f"(this device's rates, 10^12 per second: {measured}; a T4's: float16 24, float32 3.5)")
    return "\n".join(lines)


class OverBudget(RuntimeError):
    """A plan whose hidden rerun is projected over BUDGET_SHARE of the GPU limit on a T4 (`over_budget`)."""


def over_budget(stages: list[Stage], rates: dict[str, float]) -> str | None:
    """None when the stages' T4 total is within BUDGET_SHARE of GPU_LIMIT_SECONDS; else a line giving the total and
    naming the largest stages, as many as cutting would bring it within, with their T4 seconds."""
    seconds = {stage.name: t4_projection(stage, rates)[0] for stage in stages}
    total, allowed = sum(seconds.values()), BUDGET_SHARE * GPU_LIMIT_SECONDS
    if total <= allowed:
        return None
    largest, cut = [], 0.0
    for name in sorted(seconds, key=seconds.get, reverse=True):
        if total - cut <= allowed:
            break
        largest.append(f"{name} ({seconds[name]:,.0f} s)")
        cut += seconds[name]
    return (
        f"the plan's hidden rerun is projected at {total:,.0f} s on a T4, over {BUDGET_SHARE:.0%} of the "
        f"{GPU_LIMIT_SECONDS:,} s limit ({allowed:,.0f} s; lib/inference/timing.py, timings.json); shrink these "
        f"largest stages, whose cut would bring it within (fewer or smaller models and components; a title plan "
        f"tunes on at most lib.inference.title_plan.SAMPLE_ROWS train postings): {'; '.join(largest)}"
    )


def refuse_over_budget(stages: list[Stage], rates: dict[str, float], commit_run: bool) -> None:
    """Raise OverBudget with `over_budget`'s line in the commit run, so that the plan is changed before it is
    submitted; the scoring rerun, whose submission is written by now, prints the line and goes on."""
    line = over_budget(stages, rates)
    if line and commit_run:
        raise OverBudget(line)
    if line:
        print(f"WARNING: {line}")


def peak_memory_gb(device: torch.device) -> dict[str, float]:
    """The peak resident memory of this process so far, and the peak memory allocated on a CUDA device, in GB."""
    peaks = {"host": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}  # kilobytes on Linux
    if device.type == "cuda":
        peaks["device"] = torch.cuda.max_memory_allocated(device) / 2**30
    return peaks


def write_timings(path: Path, stages: list[Stage], rates: dict[str, float], device: torch.device, basis: str) -> None:
    """timings.json: the stages with their projections, the device, its measured rates, peak memory, the T4 total and
    what the projection stands on (projection_basis)."""
    projections = [t4_projection(stage, rates) for stage in stages]
    report = {
        "basis": basis,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "peak_memory_gb": peak_memory_gb(device),
        "tflops": rates,
        "stages": [
            asdict(stage) | {"projected_here": projected(stage, rates), "t4_seconds": t4, "t4_basis": basis}
            for stage, (t4, basis) in zip(stages, projections)
        ],
        "t4_seconds_at_hidden_rows": sum(t4 for t4, _ in projections),
    }
    Path(path).write_text(json.dumps(report, indent=2) + "\n")


def read_timings(path: Path) -> tuple[list[Stage], dict[str, float]]:
    """The stages and the device rates of a timings.json."""
    report = json.loads(Path(path).read_text())
    fields = set(Stage.__dataclass_fields__)
    return [Stage(**{k: v for k, v in stage.items() if k in fields}) for stage in report["stages"]], report["tflops"]
