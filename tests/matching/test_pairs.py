import numpy as np
import pytest
import scipy.sparse as sp

from lib.data.text import normalise_title
from lib.matching import pairs
from lib.matching.metrics import mean_f1, true_matches
from lib.neighbours.dense import neighbors
from lib.neighbours.sparse import sparse_neighbors


def search(rows):
    """Neighbours of a handful of unit vectors given as a similarity table: (sim, idx) sorted by hand."""
    table = np.array(rows, dtype=np.float32)
    idx = np.argsort(-table, axis=1, kind="stable")
    return np.take_along_axis(table, idx, axis=1), idx


def kept_sets(c, selected):
    return [set(row) for row in pairs.to_lists(c, selected)]


# Similarities of 4 postings: 0~1 strong, 2's nearest is 1 (weak), 3 is far from everyone.
TABLE = [
    [1.0, 0.9, 0.2, 0.1],
    [0.9, 1.0, 0.5, 0.1],
    [0.2, 0.5, 1.0, 0.3],
    [0.1, 0.1, 0.3, 1.0],
]


def test_threshold_keeps_pairs_above_and_self():
    c = pairs.candidates({"emb": search(TABLE)}, {})
    selected = pairs.predict(c, {"components": {"emb": {"threshold": 0.8}}})
    assert kept_sets(c, selected) == [{0, 1}, {0, 1}, {2}, {3}]


def test_a_posting_without_neighbours_matches_only_itself():
    x = sp.csr_matrix(np.array([[0.6, 0.8, 0.0], [0.0, 0.0, 0.0], [0.8, 0.6, 0.0], [0.0, 0.0, 1.0]]))
    c = pairs.candidates({"tfidf": sparse_neighbors(x, k=4)}, {})
    assert 1 not in c.rows and 1 not in c.cols
    selected = pairs.predict(c, {"components": {"tfidf": {"threshold": -1.0, "min2": -1.0}}})
    assert kept_sets(c, selected) == [{0, 2}, {1}, {2, 0}, {3}]


def test_min2_adds_the_nearest_other_unless_too_far():
    c = pairs.candidates({"emb": search(TABLE)}, {})
    selected = pairs.predict(c, {"components": {"emb": {"threshold": 0.8, "min2": 0.4}}})
    assert kept_sets(c, selected) == [{0, 1}, {0, 1}, {2, 1}, {3}]
    assert pairs.to_lists(c, selected)[2] == [2, 1]


def test_union_of_components_with_own_thresholds():
    other = [row[:] for row in TABLE]
    other[3][2] = other[2][3] = 0.95
    c = pairs.candidates({"a": search(TABLE), "b": search(other)}, {})
    config = {"components": {"a": {"threshold": 0.8}, "b": {"threshold": 0.9}}}
    assert kept_sets(c, pairs.predict(c, config)) == [{0, 1}, {0, 1}, {2, 3}, {3, 2}]


def test_mutual_filter_drops_one_way_pairs():
    c = pairs.candidates({"emb": search(TABLE)}, {})
    one_way = (c.rows == 2) & (c.cols == 1)
    both_ways = ((c.rows == 0) & (c.cols == 1)) | ((c.rows == 1) & (c.cols == 0))
    assert kept_sets(c, pairs.mutual(c, one_way | both_ways)) == [{0, 1}, {0, 1}, {2}, {3}]


def test_unit_filter_drops_pairs_with_different_amounts_of_one_kind():
    titles = ["Anmum Lacta 400gr", "ANMUM LACTA 200 gr", "anmum lacta 0.4kg", "Anmum Lacta vanila"]
    normalised = [normalise_title(t) for t in titles]
    everything = [[1.0] * 4 for _ in range(4)]
    c = pairs.candidates({"emb": search(everything)}, {})
    conflicts = pairs.unit_conflicts(c, normalised)
    config = {"components": {"emb": {"threshold": 0.5}}, "unit_filter": True}
    assert kept_sets(c, pairs.predict(c, config, conflicts)) == [{0, 2, 3}, {1, 3}, {2, 0, 3}, {3, 0, 1, 2}]
    with pytest.raises(ValueError, match="pass conflicts"):
        pairs.predict(c, config)


def test_identical_key_groups_add_pairs():
    c = pairs.candidates({"emb": search(TABLE)}, {"title": ["a", "b", "a", ""]})
    config = {"components": {"emb": {"threshold": 0.99}}, "groups": ["title"]}
    assert kept_sets(c, pairs.predict(c, config)) == [{0, 2}, {1}, {2, 0}, {3}]


def test_matches_are_capped_at_fifty_and_ranked_by_similarity():
    x = np.random.default_rng(0).normal(size=(3, 8)).astype(np.float32)
    x = np.repeat(x[:1], 60, axis=0) + np.linspace(0, 0.01, 60)[:, None]
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    c = pairs.candidates({"emb": neighbors(x, k=60)}, {})
    lists = pairs.to_lists(c, pairs.predict(c, {"components": {"emb": {"threshold": 0.0}}}))
    assert all(len(row) == pairs.MAX_MATCHES and row[0] == i for i, row in enumerate(lists))
    assert lists[0][1] == 1


def naive_predictions(x, threshold, k):
    """Thresholded neighbours by brute force, with plain loops."""
    predictions = []
    for i in range(len(x)):
        sims = sorted(((float(x[i] @ x[j]), j) for j in range(len(x))), reverse=True)[:k]
        predictions.append({i} | {j for s, j in sims if s >= threshold})
    return predictions


def test_pair_f1_equals_the_metric_on_built_lists():
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(30, 16))
    labels = rng.integers(0, 30, size=200)
    x = (centres[labels] + rng.normal(scale=0.6, size=(200, 16))).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    ids = [f"p{i}" for i in range(200)]
    c = pairs.candidates({"emb": neighbors(x, k=20)}, {})
    for threshold in [0.3, 0.6, 0.8]:
        selected = pairs.predict(c, {"components": {"emb": {"threshold": threshold}}})
        lists = pairs.to_posting_ids(pairs.to_lists(c, selected), ids)
        expected = mean_f1(lists, true_matches(ids, labels))
        assert pairs.pair_f1(c, selected, labels) == pytest.approx(expected)
        naive = [{ids[j] for j in row} for row in naive_predictions(x, threshold, 20)]
        assert [set(row) for row in lists] == naive


def test_pair_similarities_of_dense_and_sparse_rows_are_their_dot_products():
    rng = np.random.default_rng(0)
    dense = rng.normal(size=(30, 8)).astype(np.float32)
    sparse = sp.random(30, 50, density=0.2, format="csr", dtype=np.float32, random_state=1)
    rows, cols = rng.integers(0, 30, 200), rng.integers(0, 30, 200)
    for x in (dense, sparse):
        full = x @ x.T
        full = full.toarray() if sp.issparse(full) else full
        expected = [full[row, col] for row, col in zip(rows, cols)]
        assert np.allclose(pairs.pair_similarities(x, rows, cols, chunk=7), expected, atol=1e-5)


def test_both_ways_adds_each_pairs_reverse_once():
    sim, idx = search(TABLE)
    c = pairs.candidates({"x": (sim[:, :2], idx[:, :2])}, {})  # each posting and its nearest other
    both = pairs.both_ways(c)
    assert len(both.rows) > len(c.rows)
    one_way = set(zip(c.rows.tolist(), c.cols.tolist()))
    expected = sorted(one_way | {(col, row) for row, col in one_way})
    assert list(zip(both.rows.tolist(), both.cols.tolist())) == expected
    for (row, col), similarity, nearest in zip(expected, both.similarity["x"], both.nearest["x"]):
        assert similarity == (TABLE[row][col] if (row, col) in one_way else -np.inf)
        assert nearest == ((row, col) in one_way and c.nearest["x"][list(zip(c.rows, c.cols)).index((row, col))])
