"""End to end: sample data -> build -> the built notebook run offline by a real Jupyter kernel -> outputs."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import build
from lib.metrics import mean_f1, true_matches
from lib.submission import validate_submission
from tools.run_kernel import network_isolation

ROOT = Path(__file__).resolve().parent.parent
KERNEL = "shopee-inference"


def run(*args):
    result = subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    """A small sample in both situations Kaggle runs a kernel in, the local model dataset and a fresh build."""
    folder = tmp_path_factory.mktemp("data")
    run("tools/make_sample.py", "--out", folder / "sample", "--rows", 300, "--seed", 3)
    run("tools/make_sample.py", "--out", folder / "hidden", "--rows", 300, "--seed", 3, "--hidden")
    if not (ROOT / "data" / "datasets" / "all-minilm-l6-v2" / "config.json").is_file():
        run("tools/local_datasets.py")
    build.build_kernel(ROOT / "kernels" / KERNEL, ROOT / "build")
    return folder


def test_built_notebook_gives_the_same_outputs_as_the_source(samples, tmp_path):
    built_log = run("tools/run_kernel.py", KERNEL, "--comp", samples / "sample", "--runs", tmp_path)
    run("tools/run_kernel.py", KERNEL, "--comp", samples / "sample", "--runs", tmp_path, "--source")
    built, source = tmp_path / KERNEL, tmp_path / f"{KERNEL}-source"
    for name in ["submission.csv", "cv_scores.json", "matching_config.json"]:
        assert (built / name).read_bytes() == (source / name).read_bytes(), name
    assert (built / f"{KERNEL}.ipynb").is_file()
    assert "network disabled" in built_log or "network NOT disabled" in built_log
    assert "CV mean F1" in built_log

    test = pd.read_csv(samples / "sample" / "test.csv")
    validate_submission(built / "submission.csv", test.posting_id)
    report = json.loads((built / "cv_scores.json").read_text())
    train = pd.read_csv(samples / "sample" / "train.csv")
    assert report["rows"] == len(train)
    assert set(report["f1"]) == {"tfidf", "text", "text_inb", "text_qe", "union"}
    assert all(0 < score <= 1 for score in report["f1"].values())
    assert report["gallery_corrected"]["rows"] == 70000
    assert {"tuned", "only tfidf", "without unit_filter", "with phash groups"} <= set(report["ablation"])
    assert report["ablation"]["tuned"] == pytest.approx(report["f1"]["union"], abs=0.01)
    for plot in ["similarity_histograms.png", "f1_vs_threshold.png"]:
        assert (built / plot).read_bytes()[:4] == b"\x89PNG"


def test_hidden_rerun_matches_every_test_posting(samples, tmp_path):
    run("tools/run_kernel.py", KERNEL, "--comp", samples / "hidden", "--runs", tmp_path)
    out = tmp_path / KERNEL
    test = pd.read_csv(samples / "hidden" / "test.csv")
    assert len(test) > 3
    assert json.loads((out / "cv_scores.json").read_text())["gallery_corrected"]["rows"] == len(test)
    validate_submission(out / "submission.csv", test.posting_id)
    submission = pd.read_csv(out / "submission.csv").set_index("posting_id").loc[test.posting_id]
    solution = pd.read_csv(str(samples / "hidden") + ".solution.csv").set_index("posting_id").loc[test.posting_id]
    actual = true_matches(list(solution.index), list(solution.label_group))
    singletons = [{posting_id} for posting_id in test.posting_id]
    assert mean_f1(submission.matches.str.split(), actual) > mean_f1(singletons, actual)


def test_kernel_process_sees_only_loopback():
    prefix, sentence = network_isolation()
    if not prefix:
        pytest.skip(sentence)
    probe = "import socket; print(sorted(name for _, name in socket.if_nameindex()))"
    result = subprocess.run(prefix + [sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.stdout.strip() == "['lo']"
