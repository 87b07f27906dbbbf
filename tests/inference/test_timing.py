import json

import pytest
import torch

from lib.data.competition import HIDDEN_TEST_ROWS
from lib.inference import timing
from lib.inference.timing import Stage, Stopwatch


def test_linear_and_quadratic_stages_project_by_their_growth():
    linear = Stage("embeddings", rows=100, seconds=2.0, growth=1, where="device", target_rows=1000)
    quadratic = Stage("neighbours", rows=100, seconds=2.0, growth=2, where="device", target_rows=1000)
    assert linear.projected() == pytest.approx(20.0)
    assert quadratic.projected() == pytest.approx(200.0)


def test_a_pairwise_fit_separates_per_row_overheads_from_pairs():
    # t(n) = a n + b n^2 with a = 0.01, b = 1e-4: t(100) = 2, t(50) = 0.75
    stage = Stage("neighbours", rows=100, seconds=2.0, growth=2, where="device", target_rows=1000, half_seconds=0.75)
    assert stage.projected() == pytest.approx(0.01 * 1000 + 1e-4 * 1000**2)
    overheads_only = Stage("neighbours", 100, 2.0, 2, "device", 1000, half_seconds=1.0)  # t(n) = 2 t(n/2): linear
    assert overheads_only.projected() == pytest.approx(20.0)


def test_stopwatch_names_stages_by_phase_and_gives_their_rerun_rows():
    stopwatch = Stopwatch()
    with stopwatch.phase("evaluation", target_rows=6850):
        with stopwatch.stage("model: embeddings", rows=400):
            pass
        calls = []
        assert stopwatch.pairwise("text: neighbours", 400, lambda rows: calls.append(rows) or rows) == 400
    with stopwatch.stage("matching rules", rows=30, where="host"):
        pass
    assert [s.name for s in stopwatch.stages] == [
        "evaluation: model: embeddings",
        "evaluation: text: neighbours",
        "test: matching rules",
    ]
    assert [s.target_rows for s in stopwatch.stages] == [6850, 6850, HIDDEN_TEST_ROWS]
    assert calls == [200, 400] and stopwatch.stages[1].half_seconds is not None
    stopwatch.pairwise("tiny", 3, lambda rows: rows)
    assert stopwatch.stages[-1].half_seconds is None  # too few rows to fit


def test_a_commit_run_projects_the_test_from_its_evaluation_stages():
    stages = [
        Stage("test: fallback submission", 3, 0.1, 2, "host", HIDDEN_TEST_ROWS),
        Stage("evaluation: a: embeddings", 400, 4.0, 1, "device", 6850),
        Stage("test: a: embeddings", 3, 0.5, 1, "device", HIDDEN_TEST_ROWS),
    ]
    rerun = timing.hidden_rerun(stages, test_measured=False)
    assert [(s.name, s.target_rows) for s in rerun] == [
        ("evaluation: a: embeddings", 6850),
        ("test (as evaluation): a: embeddings", HIDDEN_TEST_ROWS),
    ]
    assert timing.hidden_rerun(stages, test_measured=True) == stages


def test_t4_projection_speeds_up_device_stages_only(tmp_path):
    device = Stage("a: embeddings", 100, 10.0, 1, "device", 100)
    host = Stage("a: read images", 100, 10.0, 1, "host", 100)
    tflops = timing.T4_TFLOPS / 4  # a device four times slower than a T4
    assert timing.t4_seconds(device, tflops) == pytest.approx(2.5)
    assert timing.t4_seconds(host, tflops) == pytest.approx(10.0)
    timing.write_timings(tmp_path / "timings.json", [device, host], tflops, torch.device("cpu"))
    written = json.loads((tmp_path / "timings.json").read_text())
    assert written["t4_seconds_at_hidden_rows"] == pytest.approx(12.5)
    assert written["device"] == "cpu" and 0.01 < written["peak_memory_gb"]["host"] < 64
    assert timing.read_timings(tmp_path / "timings.json") == ([device, host], tflops)
    assert "total" in timing.table([device, host], tflops)


def test_device_rate_is_measured():
    assert 1e-4 < timing.device_tflops(torch.device("cpu"), size=256, seconds=0.05) < 100
