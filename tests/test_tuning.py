"""lib.tuning: blends, the union of components and its rules, tuned on CV candidate pairs."""

import numpy as np
import pytest

from lib import matching, thresholds, tuning
from tools.bench_ensemble import synthetic_embeddings, synthetic_labels


def planted(rows: int, seed: int = 0):
    """Neighbours of postings in groups of 2 in two components with planted best thresholds 0.7 and 0.5: "a" sees
    the true pairs of the first half of the groups above 0.7, "b" those of the second half above 0.5, and each has
    false pairs up to just under its threshold. Returns the `(sim, idx)` of each and the label groups."""
    rng = np.random.default_rng(seed)
    labels = np.arange(rows) // 2
    partner = np.arange(rows) ^ 1
    others = np.array(
        [rng.choice(np.delete(np.arange(rows), [row, partner[row]]), 6, replace=False) for row in range(rows)]
    )
    idx = np.column_stack([np.arange(rows), partner, others])
    neighbours = {}
    for name, cut, half in [("a", 0.7, labels < rows // 4), ("b", 0.5, labels >= rows // 4)]:
        sim = np.column_stack([np.ones(rows), np.where(half, rng.uniform(cut, 0.95, rows), rng.uniform(0, 0.2, rows))])
        sim = np.column_stack([sim, rng.uniform(cut - 0.3, cut - 1e-4, others.shape)]).astype(np.float32)
        order = np.argsort(-sim, axis=1)
        neighbours[name] = (np.take_along_axis(sim, order, 1), np.take_along_axis(idx, order, 1))
    return neighbours, labels


def test_the_union_search_recovers_planted_thresholds():
    neighbours, labels = planted(400)
    c = matching.candidates(neighbours, {"title": [""] * 400, "phash": [""] * 400})
    curves = {name: thresholds.f1_curve(c, name, labels) for name in ["a", "b"]}
    alone = {name: float(thresholds.GRID[np.argmax(curves[name])]) for name in ["a", "b"]}
    assert alone == {"a": 0.7, "b": 0.5}
    conflicts = np.zeros(len(c.rows), dtype=bool)
    config, steps = tuning.tune_union(c, alone, labels, conflicts)
    assert {name: rule["threshold"] for name, rule in config["components"].items()} == {"a": 0.7, "b": 0.5}
    assert steps[-1]["f1"] == pytest.approx(1.0)
    assert matching.pair_f1(c, matching.predict(c, config, conflicts), labels) == pytest.approx(1.0)
    assert [step["change"] for step in steps[:2]] == ["a (min2, title groups, unit filter)", "+ b"]


def test_tune_orders_components_and_keeps_a_rule_change_where_it_gains():
    neighbours, labels = planted(200, seed=1)
    phashes = [str(label) if label >= 50 else "" for label in labels]  # the groups "a" does not see share a phash
    result = tuning.tune({"a": neighbours["a"]}, [""] * 200, phashes, labels)
    assert result.config["groups"] == ["title", "phash"]
    assert result.config["components"]["a"]["threshold"] == 0.7
    changes = [step["change"] for step in result.steps]
    assert changes == ["a (min2, title groups, unit filter)", "with phash groups", "thresholds searched again"]
    assert result.config["unit_filter"] and not result.config["mutual"], "no conflicts, no gain"
    assert result.f1 == pytest.approx(1.0)
    assert tuning.best_thresholds({"low": np.array([0.1, 0.3]), "high": np.array([0.9, 0.2])}) == {
        "high": float(thresholds.GRID[0]),
        "low": float(thresholds.GRID[1]),
    }


def test_a_blend_is_kept_only_where_it_gains():
    labels = synthetic_labels(600, seed=5)
    x = tuning.blended(synthetic_embeddings(labels, 0.8, 32, 6), {"k": 1, "alpha": 1.0, "stages": 1})  # rows of norm 1
    inb = {"kind": "inb", "k": 3, "alpha": 1.0, "stages": 1}
    useless = {"kind": "qe", "k": 1, "alpha": 1.0, "stages": 1}  # each row blended with itself only
    vectors, (sim, idx), blend = tuning.best_blend(x, [useless], labels, k=10)
    assert blend is None and np.allclose(vectors, x, atol=1e-6) and idx.shape == (600, 10)
    scores = {}
    for candidate in [None, inb]:
        found = matching.candidates({"x": tuning.knn.neighbors(tuning.blended(x, candidate), k=10)}, {})
        scores[str(candidate)] = thresholds.f1_curve(found, "x", labels).max()
    assert scores[str(inb)] > scores["None"] + 0.01, "INB gains on these groups"
    assert tuning.best_blend(x, [useless, inb], labels, k=10)[2] == inb
