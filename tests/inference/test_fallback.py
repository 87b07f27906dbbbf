import json

import pytest

from lib.data.text import tfidf_vectors
from lib.inference import fallback
from lib.inference.stopwatch import Stopwatch


def test_fallback_matches_are_tfidf_neighbours_over_the_threshold_or_identical_titles():
    titles = ["teh botol 350 ml", "teh botol 350 ml", "teh botol sosro 350 ml", "sabun mandi cair", "kopi", "kopi"]
    stopwatch = Stopwatch()
    found = fallback.fallback_matches(titles, titles, 0.75, stopwatch)

    x = tfidf_vectors(titles, titles).toarray()
    similarity = x @ x.T
    expected = [
        {j for j in range(len(titles)) if similarity[i, j] > 0.75 or titles[i] == titles[j]} for i in range(len(titles))
    ]
    assert [set(row) for row in found] == expected
    assert {1, 2} <= expected[0] and expected[3] == {3}
    assert [(s.name, s.kind, s.rows) for s in stopwatch.stages] == [("test: fallback submission", "sparse", 6)]
    assert stopwatch.stages[0].flops > 0
    assert fallback.fallback_matches([], [], 0.75, Stopwatch()) == []


def test_steps_return_each_result_and_record_that_the_plan_replaced_the_fallback(tmp_path):
    steps = fallback.Steps(commit_run=True, status_file=tmp_path / "run_status.json")
    assert steps.run(lambda a, b=0: a + b, 1, b=2) == 3
    assert not (tmp_path / "run_status.json").exists(), "the outcome is written once it is known"
    assert steps.finish() == {"fallback": False}
    assert json.loads((tmp_path / "run_status.json").read_text()) == {"fallback": False}


def broken(path):
    raise FileNotFoundError(f"{path}: missing")


def test_a_failure_in_the_commit_run_is_recorded_and_stops_the_notebook(tmp_path, capsys):
    steps = fallback.Steps(commit_run=True, status_file=tmp_path / "run_status.json")
    with pytest.raises(FileNotFoundError, match="plan.json: missing"):
        steps.run(broken, "plan.json")

    status = {"fallback": True, "error": "FileNotFoundError: plan.json: missing"}
    assert json.loads((tmp_path / "run_status.json").read_text()) == status
    printed = capsys.readouterr()
    assert "FAILED, the fallback submission (TF-IDF and identical titles) is kept" in printed.out
    assert "the commit run stops here: fix the plan before submitting" in printed.out
    assert "Traceback" not in printed.out + printed.err, "the cell's error shows it, once"


def test_a_failure_in_the_scoring_rerun_prints_its_traceback_and_skips_every_later_step(tmp_path, capsys):
    steps = fallback.Steps(commit_run=False, status_file=tmp_path / "run_status.json")
    called = []
    assert steps.run(broken, "plan.json") is None
    assert steps.run(called.append, "later") is None

    assert called == []
    status = {"fallback": True, "error": "FileNotFoundError: plan.json: missing"}
    assert steps.finish() == status and json.loads((tmp_path / "run_status.json").read_text()) == status
    printed = capsys.readouterr()
    assert "Traceback (most recent call last)" in printed.err and "skipped append" in printed.out
    assert "the commit run stops here" not in printed.out
