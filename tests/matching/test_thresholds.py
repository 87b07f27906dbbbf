import itertools

import numpy as np
import pytest

from lib.matching import pairs, thresholds
from lib.matching.metrics import mean_f1, true_matches


def pairs_candidates(n, rows, cols, sims):
    """Candidates over explicit pairs, one or more named components."""
    keys = np.asarray(rows) * n + np.asarray(cols)
    order = np.argsort(keys)
    similarity = {name: np.asarray(s, dtype=np.float32)[order] for name, s in sims.items()}
    nearest = {name: np.zeros(len(keys), dtype=bool) for name in sims}
    return pairs.Candidates(n, np.asarray(rows)[order], np.asarray(cols)[order], similarity, nearest)


def planted(seed=0, n=240):
    """Groups of 2-4; component a sees half the groups clearly, component b the other half."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(n // 3), 3)[:n]
    rows, cols = map(np.ravel, np.meshgrid(np.arange(n), np.arange(n), indexing="ij"))
    off = rows != cols
    rows, cols = rows[off], cols[off]
    same = labels[rows] == labels[cols]
    first_half = labels[rows] % 2 == 0
    a = np.where(same & first_half, rng.uniform(0.7, 0.9, len(rows)), rng.uniform(0.0, 0.62, len(rows)))
    b = np.where(same & ~first_half, rng.uniform(0.45, 0.6, len(rows)), rng.uniform(0.0, 0.4, len(rows)))
    a, b = np.maximum(a, a[np.argsort(cols * n + rows)]), np.maximum(b, b[np.argsort(cols * n + rows)])
    return pairs_candidates(n, rows, cols, {"a": a, "b": b}), labels


def naive_f1(c, config, labels, conflicts=None):
    """The metric on match lists built from the configuration."""
    ids = [str(i) for i in range(c.n)]
    lists = pairs.to_posting_ids(pairs.to_lists(c, pairs.predict(c, config, conflicts)), ids)
    return mean_f1(lists, true_matches(ids, labels))


def brute_force(c, labels, grid, conflicts=None, flags=((False, False),)):
    """The best CV F1 over every plan of a threshold per component (on the grid or NO_MATCH) and the given
    (unit_filter, mutual) settings, no min2, no groups, by the metric on match lists."""
    values = [*grid, pairs.NO_MATCH]
    best = -1.0
    for thresholds_, (units, mutual) in itertools.product(itertools.product(values, repeat=len(c.nearest)), flags):
        rules = {name: {"threshold": float(t)} for name, t in zip(c.nearest, thresholds_)}
        plan = {"components": rules, "unit_filter": units, "mutual": mutual}
        best = max(best, naive_f1(c, plan, labels, conflicts))
    return best


def test_search_finds_the_planted_joint_optimum():
    c, labels = planted()
    grid = np.round(np.arange(0.05, 1.0, 0.05), 2)
    start = {"components": {"a": {"threshold": 0.5}, "b": {"threshold": 0.5}}}
    found, f1 = thresholds.search(c, start, labels, grid=grid)
    brute = max(
        naive_f1(c, {"components": {"a": {"threshold": ta}, "b": {"threshold": tb}}}, labels)
        for ta, tb in itertools.product(grid, grid)
    )
    assert f1 == pytest.approx(brute)
    assert f1 == pytest.approx(1.0)
    assert 0.62 < found["components"]["a"]["threshold"] <= 0.7
    assert 0.4 <= found["components"]["b"]["threshold"] <= 0.45


COARSE = np.round(np.arange(0.1, 1.0, 0.1), 2)


def with_noise(c, seed):
    """The candidates with a third component "noise" whose similarity is the same on true and false pairs."""
    noise = np.random.default_rng(seed).uniform(0.3, 0.9, len(c.rows)).astype(np.float32)
    return pairs.Candidates(
        c.n, c.rows, c.cols, {**c.similarity, "noise": noise}, {**c.nearest, "noise": np.zeros(len(c.rows), bool)}
    )


def test_search_drops_a_component_that_only_adds_false_matches():
    c, labels = planted(3, 45)
    c = with_noise(c, 3)
    start = {"components": {name: {"threshold": 0.5} for name in ["noise", "a", "b"]}}
    found, f1 = thresholds.search(c, start, labels, grid=COARSE)
    assert "noise" not in found["components"] and set(found["components"]) == {"a", "b"}
    assert f1 == pytest.approx(brute_force(c, labels, COARSE))
    assert f1 == pytest.approx(naive_f1(c, found, labels))
    assert f1 > naive_f1(c, {"components": {**found["components"], "noise": {"threshold": 0.8}}}, labels)


def test_search_drops_a_rule_that_loses():
    c, labels = planted(4, 45)
    conflicts = labels[c.rows] == labels[c.cols]  # the unit filter would drop every true pair
    start = {"components": {"a": {"threshold": 0.65}, "b": {"threshold": 0.42}}, "unit_filter": True, "mutual": True}
    found, f1 = thresholds.search(c, start, labels, conflicts, grid=COARSE)
    assert not found["unit_filter"] and not found["mutual"], "neither gains here: of equal F1 the smaller plan"
    every = ((False, False), (True, False), (False, True), (True, True))
    assert f1 == pytest.approx(brute_force(c, labels, COARSE, conflicts, every))
    assert f1 > naive_f1(c, {**found, "unit_filter": True}, labels, conflicts)


def test_every_posting_alone_wins_when_every_component_is_noise():
    rng = np.random.default_rng(5)
    n, labels = 60, np.arange(60) // 2
    rows, cols = map(np.ravel, np.meshgrid(np.arange(n), np.arange(n), indexing="ij"))
    rows, cols = rows[rows != cols], cols[rows != cols]
    sims = {name: rng.uniform(0, 1, len(rows)) for name in ["a", "b"]}  # blind to the groups: 1 true pair in 59
    c = pairs_candidates(n, rows, cols, sims)
    c.similarity["title"] = np.where(rows // 3 == cols // 3, np.float32(1), np.float32(-np.inf))  # wrong groups
    start = {"components": {"a": {"threshold": 0.3, "min2": 0.2}, "b": {"threshold": 0.5}}, "groups": ["title"]}
    found, f1 = thresholds.search(c, start, labels, grid=COARSE)
    assert not pairs.predict(c, found).any() and found["groups"] == []
    assert f1 == pytest.approx(thresholds.ablation(c, found, labels)["every posting alone"]) == pytest.approx(2 / 3)
    assert f1 == pytest.approx(brute_force(c, labels, COARSE))
    assert found["components"] == {"a": {"threshold": pairs.NO_MATCH}}, "the first component stays, keeping none"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_plan_is_never_below_a_component_alone_or_an_ablation_line(seed):
    c, labels = planted(seed, 45)
    c = with_noise(c, seed)
    rng = np.random.default_rng(seed)
    c.nearest = {name: rng.random(len(c.rows)) < 0.2 for name in c.nearest}
    c.similarity["title"] = np.where(rng.random(len(c.rows)) < 0.05, np.float32(1), np.float32(-np.inf))
    conflicts = rng.random(len(c.rows)) < 0.1
    start = {"components": {"noise": {"threshold": 0.4, "min2": 0.3}}, "groups": ["title"], "unit_filter": True}
    found, f1 = thresholds.search(c, start, labels, conflicts, grid=COARSE)
    assert f1 == pytest.approx(pairs.pair_f1(c, pairs.predict(c, found, conflicts), labels))
    for line, score in thresholds.ablation(c, found, labels, conflicts).items():
        assert f1 >= score - 1e-12, line
    for name in ["a", "b", "noise"]:
        assert f1 >= thresholds.component_curves(c, [name], labels, COARSE)[name].max() - 1e-12, name
    assert f1 >= pairs.pair_f1(c, pairs.predict(c, start, conflicts), labels)


def test_f1_curve_matches_the_metric_at_each_threshold():
    c, labels = planted(1, 45)  # under 50 postings: the cap never binds, as pair_f1 assumes
    grid = np.array([0.3, 0.65, 0.8])
    curve = thresholds.component_curves(c, ["a"], labels, grid)["a"]
    expected = [naive_f1(c, {"components": {"a": {"threshold": t}}}, labels) for t in grid]
    np.testing.assert_allclose(curve, expected)


def every_pair(n, positives, negatives):
    """Candidates over every ordered pair of n postings in groups of 2, similarities drawn per pair."""
    labels = np.arange(n) // 2
    rows, cols = map(np.ravel, np.meshgrid(np.arange(n), np.arange(n), indexing="ij"))
    off = rows != cols
    rows, cols = rows[off], cols[off]
    same = labels[rows] == labels[cols]
    sims = np.where(same, positives(len(rows)), negatives(rows))
    return pairs_candidates(n, rows, cols, {"emb": sims}), labels


def normal_gallery(n, seed):
    """True pairs ~ N(0.75, 0.08), others ~ N(0.3, 0.12)."""
    rng = np.random.default_rng(seed)
    return every_pair(n, lambda size: rng.normal(0.75, 0.08, size), lambda rows: rng.normal(0.3, 0.12, len(rows)))


def zero_inflated_gallery(n, seed):
    """TF-IDF-like: true pairs ~ N(0.7, 0.1); of other pairs most are exactly 0, the rest heavy-tailed towards 1, and
    postings differ in how crowded their neighbourhood is (a gamma-distributed share of non-zero similarities)."""
    rng = np.random.default_rng(seed)
    crowded = np.minimum(rng.gamma(0.5, 0.1, n), 1.0)

    def negatives(rows):
        nonzero = rng.random(len(rows)) < crowded[rows]
        return np.where(nonzero, 0.95 * rng.beta(0.7, 2.5, len(rows)), 0.0)

    return every_pair(n, lambda size: np.clip(rng.normal(0.7, 0.1, size), 0, 1), negatives)


@pytest.mark.parametrize(
    "gallery, fold_rows, target_rows",
    [(normal_gallery, 200, 2000), (normal_gallery, 1000, 100), (zero_inflated_gallery, 300, 1500)],
)
def test_gallery_correction_moves_toward_the_best_threshold_of_the_target_gallery(gallery, fold_rows, target_rows):
    """Tuned on a fold, corrected for the target's size: the target's F1 recovers most of what the raw threshold
    loses against the target's own best."""
    fold, fold_labels = gallery(fold_rows, 0)
    target, target_labels = gallery(target_rows, 1)
    fold_curve = thresholds.component_curves(fold, ["emb"], fold_labels)["emb"]
    target_curve = thresholds.component_curves(target, ["emb"], target_labels)["emb"]
    raw, truth = thresholds.GRID[np.argmax(fold_curve)], thresholds.GRID[np.argmax(target_curve)]
    config = {"components": {"emb": {"threshold": float(raw)}}}
    moved = thresholds.corrected_thresholds(fold, config, fold_labels, target_rows)["components"]["emb"]["threshold"]
    direction = np.sign(target_rows - fold_rows)
    assert np.sign(truth - raw) == direction
    assert np.sign(moved - raw) == direction
    at = {name: target_curve[np.argmin(abs(thresholds.GRID - t))] for name, t in [("raw", raw), ("moved", moved)]}
    assert target_curve.max() - at["moved"] <= (target_curve.max() - at["raw"]) / 3


def test_expected_false_matches_shrink_each_count_toward_the_mean_then_scale():
    counts = np.array([0, 0, 0, 0, 1, 3, 10])
    mean, variance = counts.mean(), counts.var()
    shape = mean**2 / (variance - mean)
    expected = [(count + shape) / (1 + shape / mean) * 5 for count in counts]
    np.testing.assert_allclose(thresholds.gallery_false(5)(counts), expected)
    assert thresholds.gallery_false(5)(np.array([1, 1, 1])).tolist() == [5, 5, 5]  # no spread beyond chance
    assert thresholds.gallery_false(5)(np.zeros(3)).tolist() == [0, 0, 0]


def test_the_gallery_correction_keeps_a_component_that_matches_nothing():
    fold, labels = normal_gallery(200, 0)
    config = {"components": {"emb": {"threshold": pairs.NO_MATCH}}}
    corrected = thresholds.corrected_thresholds(fold, config, labels, 2000)
    assert corrected["components"] == config["components"]


def test_the_gallery_correction_keeps_the_rules_and_turns_on_no_component():
    c, labels = planted(3, 45)
    config = {"components": {"a": {"threshold": 0.6}, "b": {"threshold": pairs.NO_MATCH}}, "mutual": True}
    corrected = thresholds.corrected_thresholds(c, config, labels, 450)
    assert list(corrected["components"]) == ["a"] and corrected["mutual"] is True
    assert corrected["components"]["a"]["threshold"] >= 0.6


def test_ablation_toggles_one_rule_at_a_time():
    c, labels = planted(2, 45)
    c.nearest["a"] = np.zeros(len(c.rows), dtype=bool)
    c.nearest["a"][np.unique(c.rows, return_index=True)[1]] = True
    c.similarity["title"] = np.where(c.rows % 7 == c.cols % 7, np.float32(1), np.float32(-np.inf))
    conflicts = c.rows % 2 != c.cols % 2
    config = {"components": {"a": {"threshold": 0.65, "min2": 0.3}, "b": {"threshold": 0.42}}, "groups": []}
    lines = thresholds.ablation(c, config, labels, conflicts)
    assert lines["tuned"] == pytest.approx(naive_f1(c, config, labels))
    assert lines["only b"] == pytest.approx(naive_f1(c, {"components": {"b": {"threshold": 0.42}}}, labels))
    without = {"components": {"a": {"threshold": 0.65}, "b": {"threshold": 0.42}}}
    assert lines["without min2 on a"] == pytest.approx(naive_f1(c, without, labels))
    with_units = pairs.predict(c, {**config, "unit_filter": True}, conflicts)
    assert lines["with unit_filter"] == pytest.approx(pairs.pair_f1(c, with_units, labels))
    assert lines["every posting alone"] == pytest.approx(naive_f1(c, {"components": {}}, labels))
    assert set(lines) == {
        "tuned",
        "every posting alone",
        "only a",
        "only b",
        "without min2 on a",
        "with unit_filter",
        "with mutual",
        "with title groups",
    }
