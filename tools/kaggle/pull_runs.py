"""Fetch the outputs of pushed training kernels and merge every training run's MLflow store into one.

Usage: python -m tools.kaggle.pull_runs [--runs DIR] [--build DIR] [--no-download]

Each experiment pushed with `make push-train` (build/shopee-train-<exp>/push.json) has its outputs downloaded into
runs/shopee-train-<exp>/ through the delivery targets (`python -m tools.kaggle.delivery output`), where local runs
(`make train`) also write theirs; then the MLflow run of every runs/shopee-train-*/ folder is copied into
runs/mlflow.db, replacing its earlier copy, so that `mlflow ui` compares every experiment. A download that fails
(a kernel still running, or never run) is reported and the others go on; the exit status is then 1.
"""

import argparse
import subprocess
import sys
from pathlib import Path

from lib.training.tracking import STORE, merge_store

ROOT = Path(__file__).resolve().parents[2]

PREFIX = "shopee-train-"


def pushed(build_dir: Path) -> list[str]:
    """The training kernels pushed from this checkout (their build folder has a push record)."""
    return sorted(path.parent.name for path in build_dir.glob(f"{PREFIX}*/push.json"))


def download(kernel: str, runs: Path, build_dir: Path) -> bool:
    """Download one kernel's outputs into runs/<kernel> with the delivery tool; whether it worked."""
    command = [sys.executable, "-m", "tools.kaggle.delivery", "--build", str(build_dir), "output", kernel]
    command += ["--out", str(runs / kernel)]
    return subprocess.run(command, cwd=ROOT).returncode == 0


def merge_all(runs: Path) -> list[str]:
    """Merge the MLflow store of every runs/shopee-train-*/ folder (of a finished run) into runs/mlflow.db; the run
    names merged."""
    merged = []
    for folder in sorted(runs.glob(f"{PREFIX}*")):
        if not folder.suffix and (folder / STORE).is_file():  # not a local run's .running or .failed folder
            names = merge_store(folder, runs)
            print(f"{folder.name}: {len(names)} run(s) merged")
            merged += names
    return merged


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=Path, default=ROOT / "runs", help="folder of run outputs and the merged store")
    parser.add_argument("--build", type=Path, default=ROOT / "build", help="folder of builds and push records")
    parser.add_argument("--no-download", action="store_true", help="merge the outputs already there")
    args = parser.parse_args()
    failed = [] if args.no_download else [k for k in pushed(args.build) if not download(k, args.runs, args.build)]
    merged = merge_all(args.runs)
    store = args.runs / STORE
    print(f"{len(merged)} run(s) in {store}; compare them with: mlflow ui --backend-store-uri sqlite:///{store}")
    if failed:
        print(
            f"pull-runs: no outputs for {failed} (see above); their earlier copies, if any, were merged",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
