"""lib.matching.ensemble: the ensemble search on cached pair similarities, and the one-pass F1 curve it scores with."""

import numpy as np
import pytest

from lib.matching import ensemble, thresholds
from lib.matching.pairs import pair_truth
from lib.neighbours.combine import combine
from tools.bench.synthetic import synthetic_embeddings, synthetic_labels


def naive_f1(rows, cols, keep, labels) -> float:
    """Mean over postings of the F1 of {self} + kept partners against the posting's group, by loops."""
    scores = []
    for row in range(len(labels)):
        predicted = {row} | {int(col) for r, col, k in zip(rows, cols, keep) if r == row and k}
        actual = set(np.flatnonzero(labels == labels[row]).tolist())
        scores.append(2 * len(predicted & actual) / (len(predicted) + len(actual)))
    return float(np.mean(scores))


def test_cached_pairs_hold_every_sets_neighbours_and_exact_similarities():
    labels = synthetic_labels(120, seed=1)
    sets = {"a": synthetic_embeddings(labels, 2.0, 16, 1), "b": synthetic_embeddings(labels, 2.0, 16, 2)}
    pairs = ensemble.cached_pairs(sets, k=5)
    assert np.all(np.diff(pairs.rows * 120 + pairs.cols) > 0) and not np.any(pairs.rows == pairs.cols)
    found = set(zip(pairs.rows.tolist(), pairs.cols.tolist()))
    for name, x in sets.items():
        unit = x / np.linalg.norm(x, axis=1, keepdims=True)
        full = unit @ unit.T
        for row in range(120):
            others = [col for col in np.argsort(-full[row]) if col != row][:4]
            assert {(row, int(col)) for col in others} <= found, (name, row)
        assert np.allclose(pairs.similarity[name], full[pairs.rows, pairs.cols], atol=1e-5)
    assert pairs.n == 120 and pairs.nearest == {}


def test_f1_curve_is_the_mean_row_f1_at_every_threshold():
    labels = synthetic_labels(60, seed=2)
    pairs = ensemble.cached_pairs({"a": synthetic_embeddings(labels, 2.5, 8, 3)}, k=10)
    grid = np.array([-0.5, 0.0, 0.2, 0.4, 0.6, 0.8])
    curve = thresholds.f1_curve(pairs, pairs.similarity["a"], pair_truth(pairs, labels), grid)
    for threshold, f1 in zip(grid, curve):
        keep = pairs.similarity["a"] >= np.float32(threshold)
        assert f1 == pytest.approx(naive_f1(pairs.rows, pairs.cols, keep, labels)), threshold


def test_the_greedy_search_gives_a_noise_model_no_weight():
    labels = synthetic_labels(1500, seed=4)
    sets = {f"good{i}": synthetic_embeddings(labels, 1.5, 64, i) for i in (1, 2, 3)}
    sets["noise"] = np.random.default_rng(9).normal(size=(1500, 64)).astype(np.float32)
    pairs = ensemble.cached_pairs(sets, k=20)
    truth = pair_truth(pairs, labels)
    weights, steps = ensemble.greedy(pairs, truth, list(sets))
    assert "noise" not in weights and set(weights) == {"good1", "good2", "good3"}
    assert sum(weights.values()) == pytest.approx(1.0)
    assert [step["added"] for step in steps] == list(weights)
    scores = [step["f1"] for step in steps]
    assert all(later > earlier for earlier, later in zip(scores, scores[1:]))
    alone = max(thresholds.f1_curve(pairs, pairs.similarity[name], truth).max() for name in sets)
    assert scores[0] == pytest.approx(alone) and scores[-1] > alone + 0.02
    mixed = sum(weight * pairs.similarity[name] for name, weight in weights.items())
    assert thresholds.f1_curve(pairs, mixed, truth).max() == pytest.approx(scores[-1], abs=1e-6)
    combined = combine([sets[name] for name in weights], list(weights.values()))
    assert np.allclose(np.einsum("ij,ij->i", combined[pairs.rows], combined[pairs.cols]), mixed, atol=1e-5)
