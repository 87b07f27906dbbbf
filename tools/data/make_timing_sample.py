"""Compose a competition folder with a hidden-rerun-sized test: the sample's train, and 70,000 synthetic test rows.

Usage: python -m tools.data.make_timing_sample --sample data/sample --out data/timing-70k [--rows 70000]

The train part (train.csv, train_images/) links to the sample's, so that models trained on the sample find their
out-of-fold postings; the test part is the train part of a generated sample of --rows rows (seed 1), posting ids
renamed test_<n>. `make timing` runs the inference kernel on it to measure every stage at the hidden test's size.
"""

import argparse
import time
from pathlib import Path

import pandas as pd

from lib.data.competition import HIDDEN_TEST_ROWS
from tools.data.make_sample import make_sample


def compose(sample: Path, out: Path, rows: int) -> int:
    """Write `out` (train linked to `sample`, a generated test of about `rows` rows); return the test rows."""
    generated = out.parent / f"{out.name}-generated"
    if not (generated / "train.csv").is_file() or len(pd.read_csv(generated / "train.csv")) < rows * 0.9:
        make_sample(generated, seed=1, rows=rows, hidden=False)
    out.mkdir(parents=True, exist_ok=True)
    for name in ["train.csv", "train_images"]:
        (out / name).unlink(missing_ok=True)
        (out / name).symlink_to((sample / name).resolve())
    test = pd.read_csv(generated / "train.csv").drop(columns="label_group")
    test["posting_id"] = test.posting_id.str.replace("train_", "test_", regex=False)
    test.to_csv(out / "test.csv", index=False)
    (out / "test_images").unlink(missing_ok=True)
    (out / "test_images").symlink_to((generated / "train_images").resolve())
    return len(test)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=Path, required=True, help="the competition folder whose train is kept")
    parser.add_argument("--out", type=Path, required=True, help="the folder to write")
    parser.add_argument("--rows", type=int, default=HIDDEN_TEST_ROWS, help="test rows to generate (default 70000)")
    args = parser.parse_args()
    if not (args.sample / "train.csv").is_file():
        parser.error(f"{args.sample}/train.csv: no sample there; run `make sample`")
    start = time.perf_counter()
    rows = compose(args.sample, args.out, args.rows)
    print(f"{args.out}: {rows} test rows, train from {args.sample}, in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
