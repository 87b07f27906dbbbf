"""The cost of the second stage's groupings (lib.second_stage.graph) on a synthetic scored candidate graph (local only).

Usage: python -m tools.bench.graph [--rows 70000] [--others 20]   (from the repository root)

Each posting's candidates are its label group and `others` random postings, made symmetric (about 2 * others + the
group per posting: 3 million directed pairs at 70,000 rows). A direction's score is Beta(2.5, 1.5) on true pairs (mean
0.62) and Beta(0.4, 4) on false ones (mostly near 0, a few high), drawn independently per direction.
"""

import argparse
import time

import numpy as np

from tools.bench.synthetic import synthetic_graph


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
