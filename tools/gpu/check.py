"""make gpu-check: what only a CUDA device can check, in one offline run of under 8 minutes; one table at the end.

Usage: python -m tools.gpu.check [--sample data/sample] [--text-model data/datasets/all-minilm-l6-v2]
                                 [--rows 70000] [--from-rows 2000] [--out runs/gpu-check] [--allow-cpu]

The checks: the suite's CUDA tests; the float16 neighbour scan against exact answers and a plain torch matmul + topk;
one training epoch of the demo experiment; the demo's inference stages timed at --rows next to their projection from
--from-rows; LightGBM's GPU learner. --text-model takes the offline MiniLM or the tiny one of `make gpu-bundle`;
--allow-cpu runs it all on the CPU. Each check: docs/results.md, "GPU check".
"""

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

from lib.data import competition, text
from lib.inference import pipeline, time_budget
from lib.inference.stopwatch import Stage, Stopwatch
from lib.matching import pairs
from lib.neighbours.dense import neighbors
from lib.second_stage import booster, pair_model

ROOT = Path(__file__).resolve().parents[2]

CUDA_TESTS = ["tests/neighbours/test_dense.py", "tests/neighbours/test_sparse.py", "tests/models/test_models.py"]
DEMO = ROOT / "kernels" / "shopee-train" / "experiments" / "demo.yaml"
OWNER, TRAINED = "gpu-check", "gpu-check-train"
SCAN_DIM, EXACT_ROWS, K = 256, 500, 50
SETTINGS = {"batch_size": 256, "workers": 4, "max_length": 32}


def cuda_tests() -> str:
    """Run the suite's CUDA tests; their summary line."""
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "cuda", *CUDA_TESTS],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else result.stderr[-500:]
    if result.returncode not in (0, 5):  # 5: nothing selected
        raise SystemExit(f"CUDA tests failed:\n{result.stdout[-3000:]}")
    return summary


def clustered(rows: int, dim: int, device: torch.device, seed: int = 0) -> torch.Tensor:
    """Unit vectors in groups of about 3 around shared centres, like product embeddings."""
    generator = torch.Generator(device="cpu").manual_seed(seed)
    centres = torch.randn(rows // 3 + 1, dim, generator=generator)
    x = centres[torch.arange(rows) // 3] + 0.7 * torch.randn(rows, dim, generator=generator)
    return torch.nn.functional.normalize(x, dim=1).to(device)


def torch_topk(x: torch.Tensor, k: int, chunk: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """The peer: float32 x @ x.T a chunk of rows at a time, then topk."""
    sims, idxs = [], []
    for start in range(0, len(x), chunk):
        sim, idx = (x[start : start + chunk] @ x.T).topk(k, dim=1)
        sims.append(sim)
        idxs.append(idx)
    return torch.cat(sims), torch.cat(idxs)


def synchronised(device: torch.device) -> float:
    """perf_counter after the device has finished its work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def scan_check(rows: int, device: torch.device) -> dict:
    """The scan's exactness on sampled rows and its time against the torch peer."""
    x = clustered(rows, SCAN_DIM, device)
    start = synchronised(device)
    sim, idx = neighbors(x, k=K)
    ours = synchronised(device) - start
    start = synchronised(device)
    torch_topk(x, K)
    peer = synchronised(device) - start
    sample = np.random.default_rng(0).choice(rows, size=min(EXACT_ROWS, rows), replace=False)
    exact = x[sample].double().cpu().numpy() @ x.double().cpu().numpy().T
    wrong = 0
    for row, exact_row in zip(sample, exact):
        kth = np.sort(exact_row)[-K]
        found = set(idx[row][idx[row] >= 0])
        surely_in = set(np.flatnonzero(exact_row > kth + 1e-6))  # ties at the k-th may go either way
        wrong += not surely_in <= found or np.abs(sim[row] - exact_row[idx[row]]).max() > 1e-5
    return {"rows": rows, "dtype": pipeline.scan_name(), "seconds": ours, "peer_seconds": peer, "wrong_rows": wrong}


def input_root(folder: Path, sample: Path, text_model: Path, trained: Path) -> Path:
    """A /kaggle/input stand-in: the sample as the competition, the text model as a dataset, the training run's
    output folder as a kernel source."""
    for kind in ["competitions", f"datasets/{OWNER}", f"notebooks/{OWNER}"]:
        (folder / kind).mkdir(parents=True, exist_ok=True)
    trained.mkdir(parents=True, exist_ok=True)
    for link, target in [
        (folder / "competitions" / competition.COMPETITION, sample),
        (folder / "datasets" / OWNER / text_model.name, text_model),
        (folder / "notebooks" / OWNER / TRAINED, trained),
    ]:
        link.unlink(missing_ok=True)
        link.symlink_to(target.resolve(), target_is_directory=True)
    return folder


def train_epoch(out: Path, text_model: Path) -> float:
    """One epoch of the demo experiment into `out` (float16 scaler on CUDA, a process per GPU): its seconds."""
    from lib.training import experiment, train  # here: MLflow is slow to import

    overrides = yaml.safe_load(DEMO.read_text())
    overrides["train"]["epochs"] = 1
    overrides["model"]["text"]["model_dir"] = text_model.name
    start = time.perf_counter()
    train.run(experiment.resolve(overrides, f"{DEMO.name} (one epoch)"), TRAINED, out)
    return time.perf_counter() - start


def synthetic_test(sample: Path, rows: int) -> pd.DataFrame:
    """`rows` test postings: the sample's train rows repeated, each copy with its own ids and a title code."""
    train = pd.read_csv(sample / "train.csv")
    copies = train.iloc[np.arange(rows) % len(train)].reset_index(drop=True)
    copies["posting_id"] = [f"test_{row}" for row in range(rows)]
    copies["title"] = [f"{title} x{row // len(train)}" for row, title in enumerate(copies.title)]
    return copies.drop(columns="label_group")


def inference_stages(postings: pd.DataFrame, image_dir: Path) -> list[Stage]:
    """The demo plan's stages on the postings with the trained checkpoint: embeddings, TF-IDF, the blend, neighbours,
    candidate pairs, rules."""
    plan = {
        "models": {"demo": {"kind": "checkpoint", "source": TRAINED, "file": "model.pt"}},
        "components": {
            "concat": {
                "members": [{"model": "demo", "output": "concat", "weight": 1.0}],
                "blend": {"kind": "inb", "k": 3, "alpha": 1.0, "stages": 1},
            },
            "tfidf": {"tfidf": {"analyzer": "word"}},
        },
    }
    rules = {"components": {"concat": {"threshold": 0.8}, "tfidf": {"threshold": 0.7}}, "groups": ["title"]}
    stopwatch = Stopwatch()
    titles = [text.normalise_title(title) for title in postings.title]
    outputs = pipeline.model_outputs(plan, postings, image_dir, SETTINGS, stopwatch)
    vectors = pipeline.component_vectors(plan, outputs, titles, titles, stopwatch)
    neighbours = pipeline.neighbour_search(vectors, K, stopwatch)
    c, conflicts = pipeline.candidate_pairs(postings, titles, neighbours, stopwatch)
    with stopwatch.stage("matching rules", len(postings)):
        pairs.predict(c, rules, conflicts)
    return stopwatch.stages


def report(checks: dict, small: list[Stage], large: list[Stage], rates: dict) -> str:
    """The one table: each stage's projection from the small run next to its time at the large one."""
    row = "{:<34} {:<7} {:>11} {:>10} {:>7} {:>8}"
    lines = [row.format("stage", "kind", "projected", "measured", "ratio", "T4")]
    for projected_from, measured in zip(small, large):
        here = time_budget.projected(Stage(**{**vars(projected_from), "target_rows": measured.rows}), rates)
        t4 = time_budget.t4_projection(Stage(**{**vars(measured), "target_rows": measured.rows}), rates)[0]
        ratio = measured.seconds / here if here else float("nan")
        name = measured.name.removeprefix("test: ")
        lines.append(
            row.format(name, measured.kind, f"{here:.1f}", f"{measured.seconds:.1f}", f"{ratio:.2f}", f"{t4:.0f}")
        )
    scan = checks["scan"]
    lines += [
        "",
        f"projected: from {small[-1].rows} rows to {large[-1].rows} on this device (lib/inference/time_budget.py); "
        f"this device's TFLOPS {rates}",
        f"scan ({scan['dtype']}) at {scan['rows']} x {SCAN_DIM}: {scan['seconds']:.2f} s, torch matmul + topk "
        f"{scan['peer_seconds']:.2f} s (ratio {scan['seconds'] / scan['peer_seconds']:.2f}); rows differing from the "
        f"exact answer: {scan['wrong_rows']} of {min(EXACT_ROWS, scan['rows'])}",
        f"one training epoch on the sample: {checks['epoch_seconds']:.1f} s on {checks['processes']} process(es)",
        f"CUDA tests: {checks['tests']}",
        f"the pair classifier's training (lib/second_stage/booster.py): LightGBM {checks['booster']}",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sample", type=Path, default=ROOT / "data" / "sample")
    parser.add_argument("--text-model", type=Path, default=ROOT / "data" / "datasets" / "all-minilm-l6-v2")
    parser.add_argument("--rows", type=int, default=competition.HIDDEN_TEST_ROWS)
    parser.add_argument("--from-rows", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "gpu-check")
    parser.add_argument("--allow-cpu", action="store_true", help="run without CUDA (a smoke test of this script)")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type != "cuda" and not args.allow_cpu:
        print("gpu-check: no CUDA device here; run it where one is (README: GPU check)", file=sys.stderr)
        return 1
    for needed in [args.sample / "train.csv", args.text_model / "config.json"]:
        if not needed.is_file():
            print(
                f"gpu-check: {needed} missing; `make sample datasets` (or `make gpu-bundle`) makes it", file=sys.stderr
            )
            return 1
    started = time.perf_counter()
    checks = {"tests": cuda_tests(), "scan": scan_check(args.rows, device)}
    checks["booster"] = booster.device(tuple(pair_model.PARAMS.items())).why
    os.environ["KERNEL_INPUT_DIR"] = str(
        input_root(args.out / "input", args.sample, args.text_model, args.out / TRAINED)
    )
    checks["epoch_seconds"] = train_epoch(args.out / TRAINED, args.text_model)
    checks["processes"] = max(torch.cuda.device_count(), 1)
    test = synthetic_test(args.sample, args.rows)
    small = inference_stages(test.head(args.from_rows), args.sample / "train_images")
    large = inference_stages(test, args.sample / "train_images")
    print(report(checks, small, large, time_budget.measured_rates(large, device)))
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "the CPU"
    print(f"gpu-check: {time.perf_counter() - started:.0f} s in all on {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
