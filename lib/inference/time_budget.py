"""The time budget: timed stages projected to Kaggle's hidden rerun and its T4, and the check against the GPU limit.

Each stage (lib.inference.stopwatch.Stage) is projected by its kind (host, decode, forward, matmul, sparse) to its rows
on the hidden rerun, on this machine (`projected`) and on Kaggle's T4 machine (`t4_projection`): from this device's
measured rates and the stages' seconds, both without other processes' load (lib.inference.stopwatch.quiet), and for
forward passes from the cited T4 rates of their models (docs/inference.md, The time budget, says how each kind is
projected, and cites the sources). A commit run's 3 test rows are stood in for by the plan's
rows (`hidden_rerun`). The commit run refuses a plan whose rerun projects over BUDGET_SHARE of the GPU limit on a T4
(`refuse_over_budget`), naming the largest stages; the scoring rerun only prints it, as its submission is written.
"""

import json
import os
import resource
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from lib.data.competition import HIDDEN_TEST_ROWS
from lib.data.text import PRODUCT_BUDGET
from lib.inference.stopwatch import Stage, measured, quiet, sparse_products

KAGGLE_TRAIN_ROWS = 34250
KAGGLE_CPUS = 4
GPU_LIMIT_SECONDS = 2 * 3600
BUDGET_SHARE = 0.8  # of GPU_LIMIT_SECONDS: the most a plan's hidden rerun may be projected to take on a T4; the rest
# is left for the projection's error (host stages are taken as fast on Kaggle as here)
# The cited rates: docs/inference.md, The time budget, names their sources
T4_TFLOPS = {"float16": 24.0, "float32": 428 * 8.2e9 / 1e12}  # sustained; float32: ResNet-50 images/s x GFLOP
T4_SCAN_DTYPE = "float16"
T4_PER_RTX3090 = 1165 / 3219.06  # ResNet-50 at 224 px, images/s: T4 against RTX 3090
T4_PER_V100 = 1165 / 2984  # and against V100
RTX3090_IMAGES_PER_SECOND = {  # (backbone, image size): images/s, timm's inference benchmark table
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
V100_SENTENCES_PER_SECOND = {"all-minilm-l6-v2": 14200}  # sbert.net's table
STAND_IN_PHASES = ("evaluation", "title plan")  # the rows a plan was evaluated or tuned on, the first preferred
MIN_TEST_ROWS = 100  # test rows that a projection to the hidden test may start from


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
    """This device's measured rate of `dtype` matrix products, TFLOPS, without the other processes' load."""
    a = torch.randn(size, size, device=device).to(dtype)
    products, start = 0, time.perf_counter()
    with measured() as times:
        while products == 0 or time.perf_counter() - start < seconds:
            (a @ a).float().sum().item()  # .item() waits for the device
            products += 1
    return 2 * size**3 * products / quiet(**times) / 1e12


def sparse_rate(rows: int = 4000, columns: int = 2000, per_row: int = 12, seconds: float = 0.3) -> float:
    """This machine's rate of sparse products (scipy CSR x CSR^T, as the CPU's TF-IDF search), in 10^12 per second,
    without the other processes' load."""
    rng = np.random.default_rng(0)
    x = sp.random(rows, columns, density=per_row / columns, format="csr", random_state=rng, dtype=np.float32)
    transposed, products, runs, start = x.T.tocsr(), sparse_products(x), 0, time.perf_counter()
    with measured() as times:
        while runs == 0 or time.perf_counter() - start < seconds:
            x @ transposed
            runs += 1
    return products * runs / quiet(**times) / 1e12


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
    return products, max(stage.quiet_seconds - products, 0.0)


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
        return stage.quiet_seconds / min(stage.workers, cpus) * stage.scale
    return stage.quiet_seconds * stage.scale ** (stage.growth if stage.kind == "host" else 1)


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
        f"{GPU_LIMIT_SECONDS:,} s limit ({allowed:,.0f} s; lib/inference/time_budget.py, timings.json); shrink these "
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
