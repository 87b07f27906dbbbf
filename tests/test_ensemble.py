"""lib.ensemble: combined embeddings and the ensemble search on cached pair similarities."""

import numpy as np
import pytest

from lib import ensemble
from lib.ensemble import combine
from tools.bench_ensemble import synthetic_embeddings, synthetic_labels


def test_combined_dot_products_are_weighted_means_of_cosines():
    rng = np.random.default_rng(0)
    members = [rng.normal(size=(20, 8)) * 3, rng.normal(size=(20, 5)), rng.normal(size=(20, 3)).astype(np.float16)]
    weights = [0.5, 1.5, 2.0]
    combined = combine(members, weights)
    assert combined.dtype == np.float32 and combined.shape == (20, 16)
    assert np.allclose(np.linalg.norm(combined, axis=1), 1, atol=1e-6)
    for a in range(20):
        for b in range(20):
            exact = [x.astype(np.float64) for x in members]
            cosines = [np.dot(x[a], x[b]) / np.linalg.norm(x[a]) / np.linalg.norm(x[b]) for x in exact]
            expected = sum(w * cosine for w, cosine in zip(weights, cosines)) / sum(weights)
            assert float(combined[a] @ combined[b]) == pytest.approx(expected, abs=1e-5)


def test_equal_weights_are_the_concatenation_of_normalised_members():
    rng = np.random.default_rng(1)
    first, second = rng.normal(size=(6, 4)), rng.normal(size=(6, 2))
    plain = np.hstack(
        [first / np.linalg.norm(first, axis=1)[:, None], second / np.linalg.norm(second, axis=1)[:, None]]
    )
    assert np.allclose(combine([first, second], [2.0, 2.0]), plain / np.sqrt(2), atol=1e-6)
    assert np.allclose(combine([first], [0.3]), first / np.linalg.norm(first, axis=1)[:, None], atol=1e-6)


def test_combine_refuses_what_cannot_be_combined():
    x = np.ones((3, 2))
    with pytest.raises(ValueError, match="2 embedding sets for 1 weights"):
        combine([x, x], [1.0])
    with pytest.raises(ValueError, match="must all be positive"):
        combine([x, x], [1.0, 0.0])
    with pytest.raises(ValueError, match=r"members have \[3, 4\] rows"):
        combine([x, np.ones((4, 2))], [1.0, 1.0])


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
    pairs = ensemble.cached_pairs(sets, labels, k=5)
    assert np.all(np.diff(pairs.rows * 120 + pairs.cols) > 0) and not np.any(pairs.rows == pairs.cols)
    found = set(zip(pairs.rows.tolist(), pairs.cols.tolist()))
    for name, x in sets.items():
        unit = x / np.linalg.norm(x, axis=1, keepdims=True)
        full = unit @ unit.T
        for row in range(120):
            others = [col for col in np.argsort(-full[row]) if col != row][:4]
            assert {(row, int(col)) for col in others} <= found, (name, row)
        assert np.allclose(pairs.similarity[name], full[pairs.rows, pairs.cols], atol=1e-5)
    assert np.array_equal(pairs.true_pair, labels[pairs.rows] == labels[pairs.cols])


def test_f1_curve_is_the_mean_row_f1_at_every_threshold():
    labels = synthetic_labels(60, seed=2)
    pairs = ensemble.cached_pairs({"a": synthetic_embeddings(labels, 2.5, 8, 3)}, labels, k=10)
    grid = np.array([-0.5, 0.0, 0.2, 0.4, 0.6, 0.8])
    curve = ensemble.f1_curve(pairs, pairs.similarity["a"], grid)
    for threshold, f1 in zip(grid, curve):
        keep = pairs.similarity["a"] >= np.float32(threshold)
        assert f1 == pytest.approx(naive_f1(pairs.rows, pairs.cols, keep, labels)), threshold


def test_the_greedy_search_gives_a_noise_model_no_weight():
    labels = synthetic_labels(1500, seed=4)
    sets = {f"good{i}": synthetic_embeddings(labels, 1.5, 64, i) for i in (1, 2, 3)}
    sets["noise"] = np.random.default_rng(9).normal(size=(1500, 64)).astype(np.float32)
    pairs = ensemble.cached_pairs(sets, labels, k=20)
    weights, steps = ensemble.greedy(pairs, list(sets))
    assert "noise" not in weights and set(weights) == {"good1", "good2", "good3"}
    assert sum(weights.values()) == pytest.approx(1.0)
    assert [step["added"] for step in steps] == list(weights)
    scores = [step["f1"] for step in steps]
    assert all(later > earlier for earlier, later in zip(scores, scores[1:]))
    alone = max(ensemble.f1_curve(pairs, pairs.similarity[name]).max() for name in sets)
    assert scores[0] == pytest.approx(alone) and scores[-1] > alone + 0.02
    mixed = sum(weight * pairs.similarity[name] for name, weight in weights.items())
    assert ensemble.f1_curve(pairs, mixed).max() == pytest.approx(scores[-1], abs=1e-6)
    combined = ensemble.combine([sets[name] for name in weights], list(weights.values()))
    assert np.allclose(np.einsum("ij,ij->i", combined[pairs.rows], combined[pairs.cols]), mixed, atol=1e-5)
