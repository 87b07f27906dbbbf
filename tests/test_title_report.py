import numpy as np
import pandas as pd
import pytest

from lib.inference.plan import TITLE_PLAN
from tools.bench import title_report

BRANDS = ["samsung", "sony", "anmum", "wardah", "xiaomi", "philips", "oppo", "maybelline"]
WORDS = ["promo", "murah", "original", "ready", "stock", "garansi", "resmi", "termurah", "gratis", "ongkir"]


@pytest.fixture(scope="module")
def competition(tmp_path_factory, minilm):
    """A competition folder of 120 postings in groups of 2-4: brand, model code and promo words per listing."""
    rng = np.random.default_rng(0)
    rows = []
    for group in range(40):
        code = f"{rng.choice(list('abcxyz'))}{rng.integers(10, 999)}"
        for _ in range(rng.integers(2, 5)):
            words = [BRANDS[group % len(BRANDS)], code, *rng.choice(WORDS, 3, replace=False)]
            rows.append({"title": " ".join(rng.permutation(words)), "label_group": group})
    train = pd.DataFrame(rows)
    train.insert(0, "posting_id", [f"p{row}" for row in range(len(train))])
    train.insert(1, "image", "none.jpg")
    train.insert(2, "image_phash", "")
    folder = tmp_path_factory.mktemp("titles")
    train.to_csv(folder / "train.csv", index=False)
    return folder


def test_the_report_puts_the_searched_plan_above_every_baseline_it_lists(competition, local_datasets, monkeypatch):
    monkeypatch.setenv("KERNEL_INPUT_DIR", str(local_datasets))
    postings = title_report.Postings(competition)
    commit = title_report.commit_run(postings)
    baselines = [commit["plain tuned word TF-IDF"], *commit["components alone"].values(), *commit["ablation"].values()]
    assert commit["plan f1"] >= max(baselines) - 1e-12
    assert commit["plan f1"] > commit["ablation"]["every posting alone"]
    stage = commit["pair stage"]
    assert [step["step"] for step in stage["steps"]][:2] == ["threshold", "mutual"]
    assert stage["f1"] == max(step["f1"] for step in stage["steps"] if step["kept"]) and stage["pairs"] > len(
        postings.labels
    )

    bounded = title_report.bounded_run(postings)  # 120 rows, within title_plan.SAMPLE_ROWS: the same rules
    assert bounded["rows"] == len(postings.labels) and bounded["plan f1"] == commit["plan f1"]
    assert commit["ablation"]["every posting alone"] < bounded["pair stage f1"] <= 1

    rerun = title_report.rerun_on_fold(postings)
    assert rerun["fold rows"] < rerun["rows"] == len(postings.labels)
    assert set(rerun["thresholds"]) == set(TITLE_PLAN["components"])
    for name in ["tuned on the fold, raw", "tuned on the fold, corrected", "searched on all rows"]:
        assert rerun["every posting alone"] < rerun[name] <= 1
    report = title_report.markdown("titles", commit, bounded, rerun)
    assert "| plain word TF-IDF, one tuned threshold |" in report and "| tfidf |" in report
    assert "| **second stage** (" in report and "| second stage: threshold |" in report
    assert "| bounded: **second stage** |" in report
