import numpy as np
import pytest

from lib.inference import correction
from lib.matching import pairs, thresholds
from lib.neighbours.dense import neighbors
from lib.second_stage import graph_search

RULES = {
    "components": {"image": {"threshold": 0.6}, "text": {"threshold": 0.7, "min2": 0.5}},
    "groups": ["title"],
    "unit_filter": True,
    "mutual": False,
}


def out_of_fold(rows: int = 240, seed: int = 0) -> correction.OutOfFold:
    """Three components' candidate pairs of postings in groups of 3, with a noisy shared vector per group."""
    rng = np.random.default_rng(seed)
    labels = np.arange(rows) // 3
    found = {}
    for name, noise in [("image", 0.6), ("text", 0.8), ("other", 1.0)]:
        x = rng.normal(size=(rows // 3, 16))[labels] + noise * rng.normal(size=(rows, 16))
        found[name] = neighbors((x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), k=8)
    titles = [
        f"title {label} {row % 2} 100 ml" if row % 7 else f"title {label} 200 ml" for row, label in enumerate(labels)
    ]
    c = pairs.candidates(found, {"title": titles})
    return correction.OutOfFold(c, pairs.unit_conflicts(c, titles), labels)


def test_the_plans_pairs_alone_give_the_same_correction():
    full = out_of_fold()
    kept = correction.kept(full, ["image", "text"])
    assert set(kept.candidates.similarity) == {"image", "text", "title"} and len(kept.candidates.rows) < len(
        full.candidates.rows
    )
    for rows in (240, 2400, 70_000):
        expected = thresholds.corrected_thresholds(full.candidates, RULES, full.labels, rows, full.conflicts)
        assert correction.for_test(kept, {"matching": RULES}, rows) == (expected, None)
    larger = correction.for_test(kept, {"matching": RULES}, 70_000)[0]["components"]
    assert larger["text"]["threshold"] >= RULES["components"]["text"]["threshold"] - 0.2  # a sane search, not a jump


def test_the_file_reads_back_what_was_written(tmp_path):
    oof = correction.kept(out_of_fold(), ["image", "text"])
    both = pairs.both_ways(oof.candidates)
    oof.stage_pairs, oof.stage_scores = both, np.linspace(0, 1, len(both.rows)).astype(np.float32)
    correction.write(tmp_path / correction.FILE, oof)
    back = correction.read(tmp_path / correction.FILE)
    c, d = oof.candidates, back.candidates
    assert d.n == c.n and np.array_equal(d.rows, c.rows) and np.array_equal(d.cols, c.cols)
    assert d.similarity.keys() == c.similarity.keys() and d.nearest.keys() == c.nearest.keys()
    for name in c.similarity:
        assert np.array_equal(d.similarity[name], c.similarity[name])
    for name in c.nearest:
        assert np.array_equal(d.nearest[name], c.nearest[name])
    assert np.array_equal(back.conflicts, oof.conflicts) and np.array_equal(back.labels, oof.labels)
    assert np.array_equal(back.stage_pairs.rows, both.rows) and np.array_equal(back.stage_scores, oof.stage_scores)

    stage = {"file": "pair_model.txt", "features": [], "graph": {"threshold": 0.5}}
    rules, corrected_stage = correction.for_test(back, {"matching": RULES, "pair_stage": stage}, 70_000)
    expected_false = thresholds.gallery_false((70_000 - 1) / (c.n - 1))
    assert corrected_stage == {
        **stage,
        "graph": graph_search.search(both, oof.stage_scores, oof.labels, expected_false)[0],
    }


def test_a_missing_file_or_stage_scores_are_refused_with_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="run the optimize-ensemble kernel again"):
        correction.read(tmp_path / correction.FILE)
    stage = {"file": "pair_model.txt", "features": [], "graph": {"threshold": 0.5}}
    with pytest.raises(ValueError, match="carry no pair scores"):
        correction.for_test(out_of_fold(), {"matching": RULES, "pair_stage": stage}, 1000)
