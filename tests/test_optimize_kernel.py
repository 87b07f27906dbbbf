"""kernels/optimize-ensemble end to end: built for two trained runs (tools.optimize) and run offline by a real
Jupyter kernel; the inference config it writes validates, and its CV is at least the best single model's."""

import json
import subprocess
import sys
from pathlib import Path

import build
from lib.inference import correction
from lib.inference.plan import read_tuned_config
from lib.matching.ensemble import MIN_GAIN
from tools.optimize import variant

ROOT = Path(__file__).resolve().parent.parent
KERNEL = "optimize-ensemble"


def test_the_optimiser_writes_an_inference_config_at_least_as_good_as_each_model(trained_runs, tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    for name, folder in trained_runs.runs.items():
        (runs / name).symlink_to(folder, target_is_directory=True)
    build.build_kernel(variant(list(trained_runs.runs), tmp_path / "build" / "variants"), tmp_path / "build")
    command = ["tools/run_kernel.py", KERNEL, "--comp", trained_runs.competition, "--runs", runs]
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
