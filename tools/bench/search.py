"""The cost of the plan's search (lib.matching.tuning.tune: candidate pairs, unit conflicts,
lib.matching.thresholds.search) and of the gallery correction (lib.matching.thresholds.corrected_thresholds) on
synthetic out-of-fold rows (local only).

Usage: python -m tools.bench.search [--rows 7000] [--components 3] [--dim 128]   (from the repository root)

Components are synthetic embeddings of the same label groups (tools.bench.synthetic), noise 2.5, 3.0, 3.5, ...;
titles are empty except one identical title per tenth group (so the title groups are a coordinate of the search).
"""

import argparse
import time

import torch

from lib.data.competition import HIDDEN_TEST_ROWS
from lib.matching import thresholds, tuning
from lib.neighbours import combine
from lib.neighbours.dense import neighbors
from tools.bench.synthetic import synthetic_embeddings, synthetic_labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=7000)
    parser.add_argument("--components", type=int, default=3)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument(
        "--target-rows", type=int, default=HIDDEN_TEST_ROWS, help="the gallery the thresholds are corrected for"
    )
    args = parser.parse_args()
    torch.set_num_threads(2)
    labels = synthetic_labels(args.rows)
    titles = [f"title {label}" if label % 10 == 0 else "" for label in labels]
    started = time.perf_counter()
    neighbours = {
        f"c{i}": neighbors(combine.normalised(synthetic_embeddings(labels, 2.5 + 0.5 * i, args.dim, i + 1)), k=50)
        for i in range(args.components)
    }
    searched = time.perf_counter()
    result = tuning.tune(neighbours, titles, [""] * args.rows, labels)
    tuned = time.perf_counter()
    corrected = thresholds.corrected_thresholds(
        result.candidates, result.config, labels, args.target_rows, result.conflicts
    )
    done = time.perf_counter()
    print(
        f"{args.rows:,} rows, {args.components} components of {args.dim}-d, k=50: {len(result.candidates.rows):,} pairs"
    )
    print(f"neighbours: {searched - started:.1f} s")
    print(f"the search (lib.matching.tuning.tune): {tuned - searched:.1f} s, CV F1 {result.f1:.4f}: {result.config}")
    print(f"the gallery correction for {args.target_rows:,} rows: {done - tuned:.1f} s: {corrected['components']}")


if __name__ == "__main__":
    main()
