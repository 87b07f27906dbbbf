"""The cost of the ensemble search (lib.matching.ensemble) on synthetic out-of-fold embeddings (local only).

Usage: python -m tools.bench.ensemble [--models 12] [--rows 7000] [--dim 512]   (from the repository root)

Each model sees the same label groups through its own noise: a group centre plus noise of a model-specific scale,
so that models differ in quality and their errors are independent.
"""

import argparse
import time

import numpy as np
import torch

from tools.bench.synthetic import synthetic_embeddings, synthetic_labels


def main() -> None:
    from lib.matching import ensemble, pairs, tuning
    from lib.neighbours import combine
    from lib.neighbours.dense import neighbors

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=12)
    parser.add_argument("--rows", type=int, default=7000)
    parser.add_argument("--dim", type=int, default=512)
    args = parser.parse_args()
    torch.set_num_threads(2)
    labels = synthetic_labels(args.rows)
    noises = np.linspace(2.5, 4.0, args.models)
    models = {f"model{i:02d}": synthetic_embeddings(labels, noise, args.dim, i + 1) for i, noise in enumerate(noises)}
    started = time.perf_counter()
    cached = ensemble.cached_pairs(models)
    cached = time.perf_counter()
    weights, steps = ensemble.greedy(cached, pairs.pair_truth(cached, labels), list(models))
    done = time.perf_counter()
    combined = combine.combine([models[name] for name in weights], list(weights.values()))
    inb = {"kind": "inb", "k": 3, "alpha": 1.0, "stages": 1}
    _, neighbours, blend = tuning.best_blend(combined, [inb], labels, k=50)
    blended = time.perf_counter()
    components = {"combined": neighbours, "best": neighbors(combine.normalised(models[steps[0]["added"]]), k=50)}
    result = tuning.tune(components, [""] * args.rows, [""] * args.rows, labels)
    tuned = time.perf_counter()
    print(f"{args.models} models x {args.rows} rows x {args.dim}-d, {len(cached.rows):,} candidate pairs")
    print(f"neighbours + cached similarities: {cached - started:.1f} s; greedy selection: {done - cached:.1f} s")
    print(f"blend choice of the combined embedding (none or INB): {blended - done:.1f} s, chose {blend}")
    print(f"union of the combined and the best single model, rules: {tuned - blended:.1f} s, CV F1 {result.f1:.4f}")
    for entry in steps:
        print(f"  + {entry['added']} (share {entry['share']}): F1 {entry['f1']:.4f} at {entry['threshold']}")
    print("weights:", {name: round(weight, 3) for name, weight in weights.items()})


if __name__ == "__main__":
    main()
