from types import SimpleNamespace

import numpy as np
import pytest

from lib.inference import optimiser_report
from lib.matching.thresholds import GRID
from lib.matching.tuning import Tuning

RULES = {"components": {"concat": {"threshold": 0.6}}, "groups": ["title"], "unit_filter": True, "mutual": False}


def curve(best: float, at: int) -> np.ndarray:
    """An F1 curve over the threshold grid that peaks at `best` on GRID[at]."""
    values = np.full(len(GRID), best / 2)
    values[at] = best
    return values


def searches() -> dict:
    """Two searches, the ensemble's the better; its components concat and tfidf."""
    ensemble = Tuning(None, None, {"concat": curve(0.8, 10), "tfidf": curve(0.5, 20)}, RULES, 0.81)
    alone = Tuning(None, None, {"concat": curve(0.7, 12)}, RULES, 0.72)
    return {
        "run-a alone": {"tuning": alone, "blends": {"concat": None}, "search_seconds": 2.54},
        "ensemble": {"tuning": ensemble, "blends": {"concat": {"kind": "inb"}}, "search_seconds": 3.04},
    }


def stage_of(f1: float) -> SimpleNamespace:
    steps = [
        {"step": "threshold", "f1": f1 - 0.01, "kept": True, "threshold": 0.5},
        {"step": "mutual", "f1": f1 - 0.02, "kept": False},
    ]
    return SimpleNamespace(scored=SimpleNamespace(scores=np.zeros(30), names=["a", "b"]), steps=steps, f1=f1)


def report(stage, plan: dict) -> dict:
    run = SimpleNamespace(name="run-a", split="fold 0 of 5", metrics={"best": {"cv": 0.7123}})
    single = {"run-a/concat": {"added": "run-a/concat", "share": 1.0, "f1": 0.69, "threshold": 0.55}}
    greedy = {"concat": [{"added": "run-a/concat", "share": 1.0, "f1": 0.69, "threshold": 0.55}]}
    return optimiser_report.report(
        runs=[run],
        encoders={"clip": {"kind": "clip", "source": "clip"}},
        rows=12,
        candidate_pairs=40,
        single=single,
        greedy=greedy,
        searches=searches(),
        chosen="ensemble",
        ablation={"tuned": 0.81, "every posting alone": 0.3},
        stage=stage,
        stage_seconds=7.26,
        plan=plan,
    )


@pytest.mark.parametrize("used", [False, True])
def test_the_report_holds_each_baseline_and_the_final_cv_of_the_rules_or_the_stage(used):
    stage = stage_of(0.9 if used else 0.8)
    plan = {"pair_stage": {"graph": {"threshold": 0.5}}} if used else {}
    found = report(stage, plan)

    assert found["runs"] == {"run-a": {"split": "fold 0 of 5", "cv": 0.7123}}
    assert (found["rows"], found["candidate_pairs"]) == (12, 40)
    assert found["components"] == {  # the chosen search's components, at the best of their curves
        "concat": {"f1": 0.8, "threshold": float(GRID[10])},
        "tfidf": {"f1": 0.5, "threshold": float(GRID[20])},
    }
    assert found["blends"] == {"concat": {"kind": "inb"}}
    assert found["same_search"] == {"run-a alone": 0.72, "ensemble": 0.81}
    assert found["search_seconds"] == {"run-a alone": 2.5, "ensemble": 3.0}
    assert found["pair_stage"] == {
        "pairs": 30,
        "features": 2,
        "seconds": 7.3,
        "rules_cv": 0.81,
        "cv": stage.f1,
        "used": used,
        "steps": stage.steps,
    }
    graph = {"threshold": 0.5} if used else None
    assert found["final"] == {"plan": "ensemble", "cv": 0.9 if used else 0.81, "matching": RULES, "pair_stage": graph}


def test_the_markdown_has_a_row_per_step_and_the_final_cv():
    found = report(stage_of(0.9), {"pair_stage": {"graph": {}}})
    text = optimiser_report.markdown(found, "fold 0 of 5")

    assert text.endswith("|\n")
    assert text.splitlines() == [
        "CV on 12 rows (fold 0 of 5) of 1 runs and 1 encoders",
        "",
        "| step | CV F1 | threshold |",
        "|---|---:|---:|",
        "| run-a/concat alone (cached pairs) | 0.6900 | 0.55 |",
        "| run-a: its own union (metrics.json) | 0.7123 | |",
        "| concat: + run-a/concat (share 1.0) | 0.6900 | 0.55 |",
        "| run-a alone through the whole search (2 s) | 0.7200 | |",  # 2.5 s, rounded half to even
        "| ensemble through the whole search (3 s) | 0.8100 | |",
        f"| ensemble: component concat alone (blend {{'kind': 'inb'}}) | 0.8000 | {float(GRID[10])} |",
        f"| ensemble: component tfidf alone (blend None) | 0.5000 | {float(GRID[20])} |",
        "| ensemble: every posting alone | 0.3000 | |",
        "| rules only: the plan's union | 0.8100 | |",
        "| pair stage (30 pairs, 7 s): threshold | 0.8900 | 0.5 |",
        "| pair stage (30 pairs, 7 s): mutual (not kept) | 0.8800 |  |",  # a step without a threshold
        "| **final CV** (ensemble: pair stage) | **0.9000** | |",
    ]


def test_without_a_stage_the_markdown_ends_with_the_rules_components():
    text = optimiser_report.markdown(report(None, {}), "all of train")

    assert "pair stage" not in text and "rules only" not in text
    assert text.splitlines()[-1] == "| **final CV** (ensemble: concat) | **0.8100** | |"
