"""lib.inference.time_budget: each kind of stage projected as docs/inference.md says, the report, the budget check."""

import json

import pytest
import torch

from lib.data.competition import HIDDEN_TEST_ROWS
from lib.data.text import PRODUCT_BUDGET
from lib.inference import time_budget
from lib.inference.stopwatch import Stage

RATES = {"float32": 0.5}  # this device: 0.5 TFLOPS in float32


def test_host_stages_project_by_their_growth_and_as_fast_on_kaggle():
    linear = Stage("test: candidate pairs", "host", rows=100, seconds=2.0, target_rows=1000)
    quadratic = Stage("test: tfidf: neighbours", "host", rows=100, seconds=2.0, target_rows=1000, growth=2)
    assert time_budget.projected(linear, RATES) == pytest.approx(20.0)
    assert time_budget.projected(quadratic, RATES) == pytest.approx(200.0)
    assert time_budget.t4_projection(quadratic, RATES) == (pytest.approx(200.0), "as here")


def test_host_stages_on_a_loaded_machine_project_their_own_work():
    # 10 s of wall time, of which this process used 4 s of CPU while others used 5 s per CPU: the larger of the two
    # estimates of its own work, 4 s (one thread) and 10 - 5 s (threads in parallel)
    loaded = Stage("test: candidate pairs", "host", 100, 10.0, 1000, cpu_seconds=4.0, others_seconds=5.0)
    assert time_budget.projected(loaded, RATES) == pytest.approx(5.0 * 10)
    quiet = Stage("test: candidate pairs", "host", 100, 10.0, 1000, cpu_seconds=4.0, others_seconds=0.0)
    assert time_budget.projected(quiet, RATES) == pytest.approx(10.0 * 10), "alone, its wall time"
    search = Stage(
        "test: tfidf: neighbours", "sparse", 1000, 0.5, 10_000, flops=1e6, cpu_seconds=0.2, others_seconds=0.4
    )
    assert time_budget.projected(search, {"sparse": 1e-3}) == pytest.approx(0.199 * 10 + 0.001 * 100)


def test_a_scan_projects_its_products_by_precision_and_its_rest_by_rows():
    # 1000 rows of 500 dimensions: 5e8 flops; at 0.5 TFLOPS 1 ms of the 3 s measured, the rest 2.999 s per 1000 rows
    flops = 1000 * 1000 * 500
    scan = Stage("test: concat: neighbours", "matmul", rows=1000, seconds=3.0, target_rows=10_000, flops=flops)
    rest, products_here = 3.0 - 0.001, 0.001
    assert time_budget.projected(scan, RATES) == pytest.approx(rest * 10 + products_here * 100)
    t4, basis = time_budget.t4_projection(scan, RATES)
    assert t4 == pytest.approx(rest * 10 + flops * 100 / 24e12) and basis == "float16 products at 24 TFLOPS"
    # all products (seconds below the products' time at this rate): no negative rest
    fast = Stage("test: x: neighbours", "matmul", rows=1000, seconds=0.0005, target_rows=1000, flops=flops)
    assert time_budget.projected(fast, RATES) == pytest.approx(0.001)


def test_a_sparse_search_projects_its_products_at_the_measured_rate_and_its_rest_by_rows():
    # 1e6 products at 1e9 a second: 1 ms of the 0.5 s measured on 1000 rows
    search = Stage("test: tfidf: neighbours", "sparse", 1000, 0.5, 10_000, flops=1e6)
    rates = {"sparse": 1e9 / 1e12}
    assert time_budget.projected(search, rates) == pytest.approx(0.499 * 10 + 0.001 * 100)
    assert time_budget.t4_projection(search, rates) == (pytest.approx(0.499 * 10 + 0.001 * 100), "as here")


def test_the_sparse_rate_is_measured():
    assert 1e-6 < time_budget.sparse_rate(rows=500, columns=300, seconds=0.05) < 1


def test_image_decoding_spreads_over_the_workers_and_kaggles_four_cores():
    # 32 images in 0.64 s in one process: 20 ms each
    decode = Stage("test: a: read images", "decode", rows=32, seconds=0.64, target_rows=70_000, workers=8)
    assert time_budget.projected(decode, RATES, cpus=2) == pytest.approx(0.02 * 70_000 / 2)
    assert time_budget.t4_projection(decode, RATES) == (pytest.approx(0.02 * 70_000 / 4), "4 workers")
    two = Stage("test: a: read images", "decode", rows=32, seconds=0.64, target_rows=70_000, workers=2)
    assert time_budget.t4_projection(two, RATES)[0] == pytest.approx(0.02 * 70_000 / 2)


def test_a_forward_with_cited_parts_projects_by_their_rates():
    # efficientnet_b3 at 288 px: 2184.31 images/s on an RTX 3090, x 1165 / 3219.06 on a T4; MiniLM 14,200 / s on a
    # V100, x 1165 / 2984
    b3 = 2184.31 * 1165 / 3219.06
    minilm = 14200 * 1165 / 2984
    assert time_budget.cited_rate("efficientnet_b3@288") == pytest.approx(b3)
    nearest = time_budget.cited_rate("efficientnet_b3@256")
    assert nearest == pytest.approx(b3 * (288 / 256) ** 2)  # nearest size, by pixels
    assert time_budget.cited_rate("all-minilm-l6-v2") == pytest.approx(minilm)
    assert time_budget.cited_rate("test_resnet@32") is None
    joint = Stage(
        "test: a: embeddings", "forward", 100, 50.0, 70_000, parts=["efficientnet_b3@288", "all-minilm-l6-v2"]
    )
    t4, basis = time_budget.t4_projection(joint, RATES)
    assert t4 == pytest.approx(70_000 / b3 + 70_000 / minilm)
    assert basis == "cited: efficientnet_b3@288 + all-minilm-l6-v2"


def test_a_forward_without_a_cited_rate_projects_by_the_matrix_rates():
    tiny = Stage("test: a: embeddings", "forward", 100, 6.0, 1000, parts=["test_resnet@32"])
    t4, basis = time_budget.t4_projection(tiny, {"float32": 2.4})  # a device a tenth of a T4's float16 rate
    assert t4 == pytest.approx(60.0 / 10) and basis.startswith("TFLOPS ratio")


def test_a_commit_run_or_a_small_test_stands_in_for_the_test_by_the_plans_rows_and_drops_the_evaluation():
    stages = [
        Stage("test: fallback submission", "host", 3, 0.1, HIDDEN_TEST_ROWS, growth=2),
        Stage("title plan: text: neighbours", "matmul", 2000, 1.0, 34250),
        Stage("title plan: tfidf: neighbours", "host", 2000, 0.5, 34250, growth=2),
        Stage("plan: fit to the test gallery", "host", 400, 1.0, 6850),
        Stage("evaluation: fallback submission", "host", 400, 0.2, 6850, growth=2),
        Stage("evaluation: tfidf: neighbours", "host", 400, 0.2, 6850, growth=2),
        Stage("evaluation: pair stage: classifier by group k-fold", "host", 400, 9.0, 6850),
        Stage("test: text: neighbours", "matmul", 3, 0.5, HIDDEN_TEST_ROWS),
        Stage("test: tfidf: neighbours", "host", 3, 0.5, HIDDEN_TEST_ROWS, growth=2),
        Stage("test: matching rules", "host", 3, 0.01, HIDDEN_TEST_ROWS),
    ]
    rerun, left_out = time_budget.hidden_rerun(stages, test_rows=3)
    assert [(s.name, s.rows, s.target_rows) for s in rerun] == [
        ("test (as evaluation): fallback submission", 400, HIDDEN_TEST_ROWS),
        ("title plan: text: neighbours", 2000, 34250),
        ("title plan: tfidf: neighbours", 2000, 34250),
        ("plan: fit to the test gallery", 400, 6850),
        ("test (as title plan): text: neighbours", 2000, HIDDEN_TEST_ROWS),  # the evaluation has none: the tuning's
        ("test (as evaluation): tfidf: neighbours", 400, HIDDEN_TEST_ROWS),  # both have one: the evaluation's
    ]
    assert left_out == ["test: matching rules"]
    assert time_budget.hidden_rerun(stages, test_rows=8) == (rerun, left_out), "a small test is stood in for too"
    assert time_budget.hidden_rerun(stages, test_rows=time_budget.MIN_TEST_ROWS) == (stages, [])
    assert "left out, with none: test: matching rules" in time_budget.projection_basis(8, left_out)
    assert time_budget.projection_basis(time_budget.MIN_TEST_ROWS, []) == "projected from the test's own 100 rows"


def test_timings_json_holds_each_stages_projection_and_reads_back(tmp_path):
    stages = [
        Stage("test: a: embeddings", "forward", 100, 10.0, 100, parts=["resnet50@224"]),
        Stage("test: candidate pairs", "host", 100, 10.0, 100),
    ]
    time_budget.write_timings(tmp_path / "timings.json", stages, RATES, torch.device("cpu"), "basis")
    written = json.loads((tmp_path / "timings.json").read_text())
    assert written["t4_seconds_at_hidden_rows"] == pytest.approx(100 / 1165 + 10.0)
    assert [s["t4_basis"] for s in written["stages"]] == ["cited: resnet50@224", "as here"]
    assert written["basis"] == "basis" and written["device"] == "cpu" and 0.01 < written["peak_memory_gb"]["host"] < 64
    assert time_budget.read_timings(tmp_path / "timings.json") == (stages, RATES)
    text = time_budget.table(stages, RATES)
    assert "test: a: embeddings" in text and "cited: resnet50@224" in text and "of the 7200 s limit" in text


def test_device_rates_are_measured_per_precision_used():
    stages = [Stage("test: x: neighbours", "matmul", 10, 1.0, 10, dtype="float32"), Stage("test: y", "host", 1, 1, 1)]
    rates = time_budget.measured_rates(stages, torch.device("cpu"))
    assert list(rates) == ["float32"] and 1e-4 < rates["float32"] < 100


def test_a_sparse_search_projects_its_products_at_most_to_the_vocabulary_budget():
    # 1e8 products on 1,000 rows: 70 times the rows would make 4.9e11, over the budget; the vocabulary is cut to it
    search = Stage("test: char: neighbours", "sparse", 1000, 1.5, 70_000, flops=1e8)
    rates = {"sparse": 1e8 / 1e12}  # 1 s of the 1.5 s are products
    assert time_budget.product_growth(search) == PRODUCT_BUDGET / 1e8
    assert time_budget.projected(search, rates) == pytest.approx(0.5 * 70 + PRODUCT_BUDGET / 1e8)
    small = Stage("test: char: neighbours", "sparse", 1000, 1.5, 2000, flops=1e8)
    assert time_budget.product_growth(small) == 4, "under the budget: the rows' ratio squared"
    scan = Stage("test: text: neighbours", "matmul", 1000, 1.5, 70_000, flops=1e12)
    assert time_budget.product_growth(scan) == 70**2, "a dense scan has no such budget"


def budget_stages(seconds: list[float]) -> list[Stage]:
    """Host stages measured at their rerun rows, of the given seconds (their T4 projection)."""
    return [Stage(f"test: stage {i}", "host", 10, s, 10) for i, s in enumerate(seconds)]


def test_a_plan_within_the_budget_share_passes_and_one_over_it_names_the_stages_to_cut(capsys):
    allowed = time_budget.BUDGET_SHARE * time_budget.GPU_LIMIT_SECONDS
    assert time_budget.over_budget(budget_stages([allowed / 2, allowed / 2]), RATES) is None
    time_budget.refuse_over_budget(budget_stages([allowed]), RATES, commit_run=True)  # at the share exactly: within

    over = budget_stages([300.0] * 19 + [310.0, 320.0])  # 570 s over allowed (5,760 s): the two largest make it up
    line = time_budget.over_budget(over, RATES)
    assert f"projected at 6,330 s on a T4, over {time_budget.BUDGET_SHARE:.0%} of the 7,200 s limit (5,760 s;" in line
    assert line.endswith(": test: stage 20 (320 s); test: stage 19 (310 s)")
    with pytest.raises(time_budget.OverBudget) as refused:
        time_budget.refuse_over_budget(over, RATES, commit_run=True)
    assert str(refused.value) == line
    time_budget.refuse_over_budget(over, RATES, commit_run=False)  # the scoring rerun goes on
    assert capsys.readouterr().out == f"WARNING: {line}\n"
