import json
from types import SimpleNamespace

import numpy as np
import pytest

from lib.inference import correction, tuned_plan
from lib.matching.pairs import Candidates
from lib.matching.tuning import Tuning

RULES = {
    "components": {"image": {"threshold": 0.7}, "tfidf": {"threshold": 0.6, "min2": 0.5}},
    "groups": ["title"],
    "unit_filter": True,
    "mutual": False,
}


def search() -> Tuning:
    """A search over an image and a TF-IDF component whose rules use both: 4 postings, 3 candidate pairs."""
    similarity = {
        "image": np.array([0.9, -np.inf, -np.inf]),
        "tfidf": np.array([0.8, 0.7, -np.inf]),
        "title": np.array([-np.inf, -np.inf, -np.inf]),
        "char": np.array([-np.inf, -np.inf, 0.5]),
    }
    nearest = {name: np.array([True, False, False]) for name in ["image", "tfidf", "char"]}
    c = Candidates(4, np.array([0, 1, 2]), np.array([1, 2, 3]), similarity, nearest)
    curves = {"image": np.array([0.2, 0.6, 0.5]), "tfidf": np.array([0.3, 0.4, 0.1]), "char": np.array([0.1, 0.2])}
    return Tuning(c, np.array([False, True, False]), curves, RULES, 0.65)


def test_components_list_title_signals_first_then_each_outputs_rounded_members_and_blend():
    weights = {"image": {"run-a/image": 0.123456, "clip/image": 0.876544}, "concat": {"run-a/concat": 1.0}}
    blend = {"kind": "inb", "k": 3, "alpha": 1.0, "stages": 1}
    entries = tuned_plan.components(
        ["image", "tfidf", "concat"], {"tfidf": "word", "char": "char_wb"}, weights, {"image": None, "concat": blend}
    )

    assert list(entries) == ["tfidf", "image", "concat"]
    assert entries["tfidf"] == {"tfidf": {"analyzer": "word"}}
    assert entries["image"] == {
        "members": [
            {"model": "run-a", "output": "image", "weight": 0.1235},
            {"model": "clip", "output": "image", "weight": 0.8765},
        ],
        "blend": None,
    }
    assert entries["concat"] == {"members": [{"model": "run-a", "output": "concat", "weight": 1.0}], "blend": blend}


@pytest.mark.parametrize("with_stage", [False, True])
def test_the_plan_names_encoders_by_their_entries_runs_by_their_checkpoints_and_the_cv_of_its_rules(with_stage):
    entries = tuned_plan.components(
        ["tfidf", "image"], {"tfidf": "word"}, {"image": {"run-a/image": 0.5, "clip/image": 0.5}}, {"image": None}
    )
    clip = {"kind": "clip", "source": "clip"}
    stage = SimpleNamespace(f1=0.7, scored=SimpleNamespace(names=["image: similarity"]), config={"threshold": 0.5})
    plan = tuned_plan.plan(search(), entries, {"clip": clip}, 4, stage if with_stage else None)

    assert plan["models"] == {"clip": clip, "run-a": {"kind": "checkpoint", "source": "run-a", "file": "model.pt"}}
    assert plan["components"] == entries and plan["matching"] == RULES
    f1 = {"image": 0.6, "tfidf": 0.4, "union": 0.65}  # each rule component's best F1 on its curve
    assert plan["cv"] == {"rows": 4, "f1": f1 | ({"pair stage": 0.7} if with_stage else {})}
    if with_stage:
        assert plan["pair_stage"] == {
            "file": "pair_model.txt",
            "features": ["image: similarity"],
            "graph": stage.config,
        }
    else:
        assert "pair_stage" not in plan


def test_write_puts_the_plan_and_the_out_of_fold_pairs_of_its_components_beside_it(tmp_path):
    found = search()
    entries = tuned_plan.components(
        ["tfidf", "image"], {"tfidf": "word"}, {"image": {"run-a/image": 1.0}}, {"image": None}
    )
    plan = tuned_plan.plan(found, entries, {}, 4, None)
    labels = np.array([7, 7, 8, 8])
    tuned_plan.write(plan, found, labels, None, tmp_path)

    assert json.loads((tmp_path / "inference_config.json").read_text()) == plan
    kept = correction.read(tmp_path / correction.FILE)
    # pairs 0 and 1 are proposed by image or tfidf; pair 2 only by char, which the plan leaves out; groups stay
    assert kept.candidates.rows.tolist() == [0, 1] and kept.candidates.cols.tolist() == [1, 2]
    assert set(kept.candidates.similarity) == {"image", "tfidf", "title"}
    assert kept.conflicts.tolist() == [False, True] and kept.labels.tolist() == labels.tolist()
    assert kept.stage_scores is None


def test_write_refuses_a_plan_that_does_not_validate(tmp_path):
    found = search()
    plan = tuned_plan.plan(found, {"tfidf": {"tfidf": {"analyzer": "word"}}}, {}, 4, None)  # rules name image

    with pytest.raises(ValueError, match="inference_config.json: matching.components.image"):
        tuned_plan.write(plan, found, np.array([7, 7, 8, 8]), None, tmp_path)
    assert not (tmp_path / "inference_config.json").exists()
