"""kernels/optimize-ensemble end to end: built for two trained runs, or for frozen pretrained encoders alone
(tools.local.optimize), and run offline by a real Jupyter kernel; the inference config it writes validates, its CV is at
least the best single model's, and the inference kernel attaching what it reads scores it in both runs."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import build
from lib.data.competition import HIDDEN_TEST_ROWS
from lib.data.submission import validate_submission
from lib.inference import correction
from lib.inference.plan import read_tuned_config
from lib.matching.ensemble import MIN_GAIN
from tests import tiny_encoders
from tools.local.optimize import ENCODER_FILE, variant
from tools.local.variants import plan_kernel

ROOT = Path(__file__).resolve().parent.parent
KERNEL = "optimize-ensemble"


def test_the_optimiser_writes_an_inference_config_at_least_as_good_as_each_model(trained_runs, tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    for name, folder in trained_runs.runs.items():
        (runs / name).symlink_to(folder, target_is_directory=True)
    build.build_kernel(variant(list(trained_runs.runs), tmp_path / "build" / "variants"), tmp_path / "build")
    command = ["-m", "tools.local.run_kernel", KERNEL, "--comp", trained_runs.competition, "--runs", runs]
    command += ["--build", tmp_path / "build"]
    result = subprocess.run([sys.executable, *map(str, command)], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = runs / KERNEL
    config = read_tuned_config(out / "inference_config.json")
    report = json.loads((out / "report.json").read_text())
    assert set(report["runs"]) == set(trained_runs.runs)
    assert set(report["single"]) == {
        f"{run}/{output}" for run in trained_runs.runs for output in ["concat", "image", "text"]
    }
    best_single = max(entry["f1"] for entry in report["single"].values())
    assert config["cv"]["f1"]["union"] >= best_single
    assert set(report["same_search"]) == {f"{run} alone" for run in trained_runs.runs} | {"ensemble"}
    baselines = {  # every one a plan the search evaluated or chose among: never above the plan
        **{f"{name} through the search": f1 for name, f1 in report["same_search"].items()},
        **{f"component {name} alone": entry["f1"] for name, entry in report["components"].items()},
        **{f"ablation: {name}": f1 for name, f1 in report["ablation"].items()},
    }
    assert "ablation: every posting alone" in baselines
    for name, f1 in baselines.items():
        assert config["cv"]["f1"]["union"] >= f1 - 1e-12, name
    rules_cv = report["same_search"][report["final"]["plan"]]
    assert rules_cv == config["cv"]["f1"]["union"] == report["pair_stage"]["rules_cv"]
    stage = report["pair_stage"]  # the second stage, fitted on the plan's candidate pairs; in the plan where it gains
    assert stage["pairs"] > report["rows"] and [step["step"] for step in stage["steps"]][:2] == ["threshold", "mutual"]
    assert stage["cv"] == max(step["f1"] for step in stage["steps"] if step["kept"])
    assert stage["used"] == (stage["cv"] >= rules_cv + MIN_GAIN) == ("pair_stage" in config)
    assert report["final"]["cv"] == max(rules_cv, stage["cv"] if stage["used"] else 0)
    assert (out / "pair_model.txt").is_file() == stage["used"]
    assert "pair stage" in (out / "report.md").read_text() and "rules only" in (out / "report.md").read_text()
    assert "every posting alone" in (out / "report.md").read_text()
    assert config["cv"]["rows"] == report["rows"] == 94
    assert "gallery_corrected" not in json.loads((out / "inference_config.json").read_text())
    out_of_fold = correction.read(out / correction.FILE)  # what the inference kernel fits the plan to its test by
    assert out_of_fold.candidates.n == len(out_of_fold.labels) == report["rows"]
    assert set(out_of_fold.candidates.nearest) == set(
        config["components"] if stage["used"] else config["matching"]["components"]
    )
    assert (out_of_fold.stage_scores is not None) == stage["used"]
    assert (
        correction.for_test(out_of_fold, config, report["rows"])[0]["components"].keys()
        == config["matching"]["components"].keys()
    )
    for component in config["components"].values():
        for member in component.get("members", []):
            assert config["models"][member["model"]] == {
                "kind": "checkpoint",
                "source": member["model"],
                "file": "model.pt",
            }
    assert set(config["matching"]["components"]) <= set(config["components"])
    for plot in ["f1_vs_threshold.png", "greedy_additions.png", "similarity_histograms.png"]:
        assert (out / plot).read_bytes()[:4] == b"\x89PNG"
    assert "final CV" in (out / "report.md").read_text()


def run_kernel(name: str, comp: Path, folder: Path) -> str:
    """Run a kernel built in folder/build on comp, its sources in folder/runs and folder/datasets; its output."""
    command = [
        "-m",
        "tools.local.run_kernel",
        name,
        "--comp",
        comp,
        "--runs",
        folder / "runs",
        "--build",
        folder / "build",
    ]
    command += ["--datasets", folder / "datasets"]
    result = subprocess.run([sys.executable, *map(str, command)], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def samples(folder: Path) -> tuple[Path, Path]:
    """A 150-row sample in the commit run's situation and in the scoring rerun's."""
    made = []
    for name, hidden in [("sample", []), ("hidden", ["--hidden"])]:
        command = ["-m", "tools.data.make_sample", "--out", folder / name, "--rows", "150", "--seed", "5", *hidden]
        subprocess.run([sys.executable, *map(str, command)], check=True, capture_output=True, cwd=ROOT)
        made.append(folder / name)
    return made[0], made[1]


ENCODERS = {
    "all-minilm-l6-v2": {"kind": "sentence", "source": "all-minilm-l6-v2", "pooling": "mean", "prefix": ""},
    "tiny-clip": {"kind": "clip", "source": "tiny-clip"},
    "tiny-resnet": {
        "kind": "image",
        "source": "tiny-resnet",
        "file": "test_resnet.safetensors",
        "backbone": "test_resnet",
        "image_size": 32,
    },
}


def encoder_datasets(folder: Path, minilm: Path) -> Path:
    """folder/datasets with a sentence model, a CLIP model and a timm backbone (tests/tiny_encoders.py) and the wheels
    stand-in; folder/meta with each encoder's entry as make pretrained writes it."""
    datasets = folder / "datasets"
    datasets.mkdir()
    (datasets / "all-minilm-l6-v2").symlink_to(minilm, target_is_directory=True)
    (datasets / "shopee-wheels").symlink_to(minilm.parent / "shopee-wheels", target_is_directory=True)
    tiny_encoders.image_text_folder(datasets / "tiny-clip", "clip")
    (datasets / "tiny-resnet").mkdir()
    tiny_encoders.backbone_weights(datasets / "tiny-resnet" / "test_resnet.safetensors")
    for slug, entry in ENCODERS.items():
        (folder / "meta" / slug).mkdir(parents=True)
        (folder / "meta" / slug / ENCODER_FILE).write_text(json.dumps(entry))
    return datasets


def test_a_plan_of_frozen_encoders_alone_is_tuned_on_train_and_scored_in_both_runs(minilm, tmp_path):
    sample, hidden = samples(tmp_path)
    encoder_datasets(tmp_path, minilm)
    optimiser = variant([], tmp_path / "build" / "variants", list(ENCODERS), meta=tmp_path / "meta")
    build.build_kernel(optimiser, tmp_path / "build")
    metadata = json.loads((tmp_path / "build" / KERNEL / "kernel-metadata.json").read_text())
    assert metadata["kernel_sources"] == [] and metadata["enable_gpu"] is True
    assert {source.split("/")[-1] for source in metadata["dataset_sources"]} >= set(ENCODERS)
    run_kernel(KERNEL, sample, tmp_path)

    out = tmp_path / "runs" / KERNEL
    config = read_tuned_config(out / "inference_config.json")
    report = json.loads((out / "report.json").read_text())
    train = pd.read_csv(sample / "train.csv")
    assert report["rows"] == config["cv"]["rows"] == len(train), "no run: the rows are all of train"
    assert report["runs"] == {} and report["encoders"] == ENCODERS
    assert set(report["single"]) == {"all-minilm-l6-v2/text", "tiny-clip/image", "tiny-clip/text", "tiny-resnet/image"}
    assert set(report["same_search"]) == {f"{slug} alone" for slug in ENCODERS} | {"ensemble"}
    assert config["models"] and config["models"] == {name: ENCODERS[name] for name in config["models"]}
    assert config["cv"]["f1"]["union"] >= max(report["same_search"].values()) - 1e-12
    if "tiny-clip" in config["models"] and "pair_stage" in config:
        assert "tiny-clip.image_text" in config["pair_stage"]["features"]

    build.build_kernel(plan_kernel(ROOT / "kernels", tmp_path / "runs", tmp_path / "build"), tmp_path / "build")
    inference = json.loads((tmp_path / "build" / "shopee-inference" / "kernel-metadata.json").read_text())
    assert [source.split("/")[-1] for source in inference["kernel_sources"]] == [KERNEL], "no training run to attach"
    assert {source.split("/")[-1] for source in inference["dataset_sources"]} >= set(config["models"])
    scored = tmp_path / "runs" / "shopee-inference"
    log = run_kernel("shopee-inference", sample, tmp_path)
    assert json.loads((scored / "cv_scores.json").read_text())["evaluated_on"] == "all of train"
    timings = json.loads((scored / "timings.json").read_text())
    forward = [stage for stage in timings["stages"] if stage["kind"] == "forward"]
    assert {f"test (as evaluation): {model}: embeddings" for model in config["models"]} == {s["name"] for s in forward}
    assert all(stage["target_rows"] == HIDDEN_TEST_ROWS and stage["t4_seconds"] > 0 for stage in forward)
    total = sum(stage["t4_seconds"] for stage in timings["stages"])
    assert timings["t4_seconds_at_hidden_rows"] == pytest.approx(total), "the plan's projection at full size"
    assert f"submission.csv by the plan ({'pair stage' if 'pair_stage' in config else 'rules'})" in log
    log = run_kernel("shopee-inference", hidden, tmp_path)
    assert "the scoring rerun (no CV)" in log and not (scored / "cv_scores.json").exists()
    assert json.loads((scored / "run_status.json").read_text()) == {"fallback": False}
    validate_submission(scored / "submission.csv", pd.read_csv(hidden / "test.csv").posting_id)
