"""lib.matching.tuning: blends, the union of components and its rules, tuned on CV candidate pairs."""

import itertools

import numpy as np
import pytest

from lib.matching import pairs, thresholds, tuning
from tools.bench.synthetic import synthetic_embeddings, synthetic_labels


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


def test_tune_recovers_planted_thresholds_and_drops_what_does_not_gain():
    neighbours, labels = planted(400)
    result = tuning.tune(neighbours, [""] * 400, [""] * 400, labels)
    assert tuning.best_thresholds(result.curves) == {"a": 0.7, "b": 0.5}
    assert result.config == {
        "components": {"a": {"threshold": 0.7}, "b": {"threshold": 0.5}},
        "groups": [],
        "unit_filter": False,
        "mutual": False,
    }, "min2, title groups and the unit filter of the start gain nothing here: of equal F1 the smaller plan"
    assert result.f1 == pytest.approx(1.0)
    assert pairs.pair_f1(result.candidates, pairs.predict(result.candidates, result.config), labels) == 1.0


def test_tune_keeps_a_rule_change_where_it_gains():
    neighbours, labels = planted(200, seed=1)
    phashes = [str(label) if label >= 50 else "" for label in labels]  # the groups "a" does not see share a phash
    result = tuning.tune({"a": neighbours["a"]}, [""] * 200, phashes, labels)
    assert result.config == {
        "components": {"a": {"threshold": 0.7}},
        "groups": ["phash"],
        "unit_filter": False,
        "mutual": False,
    }
    assert result.f1 == pytest.approx(1.0)
    assert tuning.best_thresholds({"low": np.array([0.1, 0.3]), "high": np.array([0.9, 0.2])}) == {
        "high": float(thresholds.GRID[0]),
        "low": float(thresholds.GRID[1]),
    }


def test_tune_drops_a_component_that_loses_and_is_never_below_a_baseline():
    neighbours, labels = planted(200, seed=2)
    rng = np.random.default_rng(2)
    sim, idx = neighbours["a"]
    neighbours["noise"] = (np.column_stack([sim[:, :1], rng.uniform(0.8, 0.99, (200, 7))]).astype(np.float32), idx)
    result = tuning.tune(neighbours, [""] * 200, [""] * 200, labels)
    assert set(result.config["components"]) == {"a", "b"}
    assert result.f1 > result.curves["noise"].max() + 0.2
    lines = thresholds.ablation(result.candidates, result.config, labels, result.conflicts)
    naive = {  # every plan of one threshold per component on a coarse grid, with NO_MATCH
        values: pairs.pair_f1(
            result.candidates,
            pairs.predict(result.candidates, {"components": dict(zip(neighbours, rules))}),
            labels,
        )
        for values in itertools.product([0.5, 0.7, 0.9, pairs.NO_MATCH], repeat=3)
        for rules in [[{"threshold": value} for value in values]]
    }
    assert result.f1 >= max([*lines.values(), *naive.values()]) - 1e-12
    assert result.f1 >= max(curve.max() for curve in result.curves.values())


def test_a_blend_is_kept_only_where_it_gains():
    labels = synthetic_labels(600, seed=5)
    x = tuning.blended(synthetic_embeddings(labels, 0.8, 32, 6), {"k": 1, "alpha": 1.0, "stages": 1})  # rows of norm 1
    inb = {"kind": "inb", "k": 3, "alpha": 1.0, "stages": 1}
    useless = {"kind": "qe", "k": 1, "alpha": 1.0, "stages": 1}  # each row blended with itself only
    vectors, (sim, idx), blend = tuning.best_blend(x, [useless], labels, k=10)
    assert blend is None and np.allclose(vectors, x, atol=1e-6) and idx.shape == (600, 10)
    scores = {}
    for candidate in [None, inb]:
        found = pairs.candidates({"x": tuning.dense.neighbors(tuning.blended(x, candidate), k=10)}, {})
        scores[str(candidate)] = thresholds.component_curves(found, ["x"], labels)["x"].max()
    assert scores[str(inb)] > scores["None"] + 0.01, "INB gains on these groups"
    assert tuning.best_blend(x, [useless, inb], labels, k=10)[2] == inb
