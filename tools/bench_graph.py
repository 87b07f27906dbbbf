"""The cost of the second stage's groupings (lib.second_stage.graph) on a synthetic scored candidate graph (local only).

Usage: python -m tools.bench_graph [--rows 70000] [--others 20]   (from the repository root)

Each posting's candidates are its label group and `others` random postings, made symmetric (about 2 * others + the
group per posting: 3 million directed pairs at 70,000 rows). A direction's score is Beta(2.5, 1.5) on true pairs (mean
0.62) and Beta(0.4, 4) on false ones (mostly near 0, a few high), drawn independently per direction.
"""

import argparse
import time

import numpy as np

from lib.matching.pairs import Candidates
from tools.bench_ensemble import synthetic_labels


def synthetic_graph(rows: int, others: int, seed: int = 0) -> tuple[Candidates, np.ndarray, np.ndarray]:
    """Symmetric candidate pairs over `synthetic_labels` groups, each direction's score, and the labels."""
    rng = np.random.default_rng(seed)
    labels = synthetic_labels(rows, seed)
    order = np.argsort(labels, kind="stable")
    starts = np.searchsorted(labels[order], labels)
    ends = np.searchsorted(labels[order], labels, side="right")
    mates = [(row, int(mate)) for row in range(rows) for mate in order[starts[row] : ends[row]] if mate != row]
    random = np.column_stack([np.repeat(np.arange(rows), others), rng.integers(0, rows, rows * others)])
    pairs = np.concatenate([np.array(mates, dtype=np.int64).reshape(-1, 2), random])
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    keys = np.unique(np.concatenate([pairs[:, 0] * rows + pairs[:, 1], pairs[:, 1] * rows + pairs[:, 0]]))
    c = Candidates(rows, keys // rows, keys % rows, {}, {})
    same = labels[c.rows] == labels[c.cols]
    score = np.where(same, rng.beta(2.5, 1.5, len(keys)), rng.beta(0.4, 4, len(keys))).astype(np.float32)
    return c, score, labels


def main() -> None:
    from lib.second_stage import graph, graph_search

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=70000)
    parser.add_argument("--others", type=int, default=20)
    args = parser.parse_args()
    c, score, labels = synthetic_graph(args.rows, args.others)
    edge = graph.edge_scores(c, score, mutual=False)
    for until in [graph_search.target_sizes(labels)[-1], np.inf]:
        started = time.perf_counter()
        merges = graph.agglomerative(c, edge, until)
        seconds = time.perf_counter() - started
        print(f"agglomerative until mean size {until}: {len(merges.first):,} merges, {seconds:.1f} s")
    started = time.perf_counter()
    cluster = graph.cut(merges, 2.8)
    seconds, f1 = time.perf_counter() - started, graph_search.cluster_f1(cluster, labels)
    print(f"{args.rows:,} postings, {len(c.rows):,} directed candidate pairs; a cut at mean size 2.8: {seconds:.3f} s")
    print(f"CV F1 of that cut {f1:.4f}")
    started = time.perf_counter()
    cluster = graph.tiered_clusters(c, edge, *graph_search.TIERED_START)
    seconds, f1 = time.perf_counter() - started, graph_search.cluster_f1(cluster, labels)
    print(f"tiered at {graph_search.TIERED_START}: {seconds:.1f} s, CV F1 {f1:.4f}")


if __name__ == "__main__":
    main()
