"""The second stage's cost at the hidden test's size (local only): pair features, scores and graph steps.

Usage: python -m tools.bench.pair_stage [--rows 70000] [--fold 7000]   (from the repository root)

Synthetic postings (generator of tools.bench.synthetic: label groups of 1-6, two embedding "models" of
different noise, titles drawn from each group's words, random phashes) stand for the test. A stage is fitted on a
fold-sized set from the same generator (another seed), then applied to the test-sized set as the inference kernel
does: features built and scored a chunk at a time (lib.second_stage.forest), then the graph steps. Peers in the same
run, for the ratios: LightGBM's own predict on the whole feature matrix held at once (the classifier alone, no feature
building, unbounded memory) and scipy's connected components of the same kept edges (the simplest grouping).
"""

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
from scipy.sparse.csgraph import connected_components

from lib.data.text import tfidf_vectors
from lib.matching import pairs
from lib.neighbours.dense import neighbors
from lib.neighbours.sparse import sparse_neighbors
from lib.second_stage import forest, graph, pair_stage
from lib.second_stage.pair_features import PairFeatures
from tools.bench.synthetic import synthetic_embeddings, synthetic_labels

K = 50


def postings(rows: int, seed: int):
    """Labels, component vectors and neighbours, titles, phashes and candidate pairs of `rows` synthetic postings."""
    labels = synthetic_labels(rows, seed)
    rng = np.random.default_rng(seed)
    words = rng.integers(0, 20000, size=(labels.max() + 1, 8))
    titles = [" ".join(f"w{w}" for w in rng.permutation(words[label])[: rng.integers(5, 9)]) for label in labels]
    vectors = {
        "image": synthetic_embeddings(labels, 3.0, 256, seed + 1),
        "text": synthetic_embeddings(labels, 2.5, 256, seed + 2),
        "tfidf": tfidf_vectors(titles, titles),
    }
    vectors["image"] /= np.linalg.norm(vectors["image"], axis=1, keepdims=True)
    vectors["text"] /= np.linalg.norm(vectors["text"], axis=1, keepdims=True)
    search = {name: sparse_neighbors if sp.issparse(x) else neighbors for name, x in vectors.items()}
    neighbours = {name: search[name](x, k=min(K, rows)) for name, x in vectors.items()}
    phashes = [f"{value:016x}" for value in rng.integers(0, 2**63, size=rows)]
    return labels, vectors, neighbours, titles, phashes, pairs.candidates(neighbours, {"title": titles})


def timed(function, *args):
    """(result, seconds) of one call."""
    start = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=70000)
    parser.add_argument("--fold", type=int, default=7000)
    args = parser.parse_args()
    torch.set_num_threads(2)

    labels, vectors, neighbours, titles, phashes, c = postings(args.fold, seed=10)
    fitted, fit_seconds = timed(pair_stage.fit, vectors, neighbours, c, titles, phashes, labels)
    print(f"fit on {args.fold} postings ({len(fitted.scored.scores)} pairs): {fit_seconds:.0f} s, CV {fitted.f1:.4f}")

    labels, vectors, neighbours, titles, phashes, c = postings(args.rows, seed=20)
    with tempfile.TemporaryDirectory() as folder:
        fitted.model.save_model(str(Path(folder) / pair_stage.MODEL_FILE))
        stage = {"file": pair_stage.MODEL_FILE, "features": fitted.scored.names, "graph": fitted.config}
        scored, score_seconds = timed(pair_stage.score, vectors, neighbours, c, titles, phashes, stage, folder)
        both, scores, scorer = scored
        matches, graph_seconds = timed(graph.apply, both, scores, stage["graph"])
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # GB, before the peer holds every feature
        matrix, build_seconds = timed(PairFeatures(vectors, neighbours, titles, phashes).chunk, both.rows, both.cols)
        _, predict_seconds = timed(forest.lightgbm_scorer(Path(folder) / pair_stage.MODEL_FILE), matrix)
    edge = graph.edge_scores(both, scores, mutual=False)
    kept = edge >= stage["graph"]["threshold"]
    adjacency = sp.coo_matrix((np.ones(kept.sum()), (both.rows[kept], both.cols[kept])), shape=(both.n, both.n))
    _, components_seconds = timed(connected_components, adjacency)
    print(f"{args.rows} postings, {len(scores)} candidate pairs both ways, {len(fitted.scored.names)} features")
    print(f"features and scores ({scorer}, chunks of {forest.CHUNK}): {score_seconds:.1f} s")
    print(f"  peer: the features at once {build_seconds:.1f} s + LightGBM predict at once {predict_seconds:.1f} s")
    print(f"  ratio to the peer: {score_seconds / (build_seconds + predict_seconds):.2f}")
    print(f"graph steps {stage['graph']}: {graph_seconds:.1f} s")
    print(f"  peer: scipy's connected components of the kept edges {components_seconds:.2f} s")
    print(f"peak memory up to the graph steps {peak:.1f} GB; {len(matches)} match lists")


if __name__ == "__main__":
    main()
