"""Build the training kernel of one experiment and run it locally, offline (`make train`).

Usage: python -m tools.local.train EXP [--comp COMP] [--build DIR] [--runs DIR] [--kernels DIR]   (from the root)

Writes DIR/experiments/shopee-train-EXP/ (the experiment's kernel: tools.kaggle.kernels.experiment_kernel),
builds it into DIR/shopee-train-EXP/ and runs it with tools.local.run_kernel on COMP: outputs in RUNS/shopee-train-EXP/
(runs/ by default), each epoch shown as it trains.
A refusal (an unknown experiment, a setting of the wrong type, a build check) is one line naming the file and the fix.
"""

import argparse
import subprocess
import sys
from pathlib import Path

import build
from tools.kaggle.cli import DeliveryError
from tools.kaggle.kernels import experiment_kernel
from tools.kaggle.paths import KERNELS, TRAIN
from tools.kaggle.preflight import PreflightError

ROOT = build.ROOT


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("experiment", help="experiments/<name>.yaml of kernels/shopee-train")
    parser.add_argument("--comp", type=Path, default=ROOT / "data" / "sample", help="competition data folder")
    parser.add_argument("--build", type=Path, default=ROOT / "build", help="folder of built kernels")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs", help="folder of run outputs")
    parser.add_argument("--kernels", type=Path, default=KERNELS, help="folder of kernel sources")
    args = parser.parse_args()
    try:
        built = build.build_kernel(experiment_kernel(args.kernels / TRAIN, args.experiment, args.build), args.build)
    except (DeliveryError, PreflightError, build.BuildError) as error:
        print(f"train: {error}", file=sys.stderr)
        return 1
    command = [sys.executable, "-m", "tools.local.run_kernel", built.name, "--comp", str(args.comp)]
    return subprocess.run(command + ["--build", str(args.build), "--runs", str(args.runs)]).returncode


if __name__ == "__main__":
    sys.exit(main())
