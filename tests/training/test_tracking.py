"""lib.training.tracking: a run logged into an output folder's store, continued after a resume, merged into another
store; tools/kaggle/pull_runs.py merging every local training output."""

import subprocess
import sys
from pathlib import Path

from mlflow import MlflowClient

from lib.training.tracking import EXPERIMENT, SOURCE_TAG, STORE, Tracker, flatten, merge_store, store_uri

ROOT = Path(__file__).resolve().parents[2]
CONFIG = {"seed": 1, "train": {"epochs": 2, "lr": {"text": 2e-5}}, "resume": None}


def logged_run(folder: Path, name: str, losses: list[float]) -> str:
    """A finished run with one loss per epoch and a plot; its run id."""
    tracker = Tracker(folder, name, CONFIG)
    (folder / "curves.png").write_bytes(b"\x89PNG fake")
    for epoch, loss in enumerate(losses, start=1):
        tracker.log_metrics({"loss": loss, "cv_union": 1 - loss}, epoch)
    tracker.log_artifact(folder / "curves.png")
    tracker.finish()
    return tracker.run_id


def runs_of(folder: Path) -> list:
    client = MlflowClient(tracking_uri=store_uri(folder))
    return client.search_runs([client.get_experiment_by_name(EXPERIMENT).experiment_id])


def test_flatten_gives_dotted_params():
    assert flatten(CONFIG) == {"seed": "1", "train.epochs": "2", "train.lr.text": "2e-05", "resume": "None"}


def test_a_run_is_logged_and_continued_in_the_output_folder(tmp_path):
    tracker = Tracker(tmp_path, "exp001", CONFIG)
    tracker.log_metrics({"loss": 2.0}, 1)
    continued = Tracker(tmp_path, "exp001", CONFIG, run_id=tracker.run_id)
    continued.log_metrics({"loss": 1.0}, 2)
    continued.finish()
    (run,) = runs_of(tmp_path)
    assert (tmp_path / STORE).is_file()
    assert run.info.run_name == "exp001" and run.info.status == "FINISHED"
    assert run.data.params["train.lr.text"] == "2e-05"
    history = MlflowClient(tracking_uri=store_uri(tmp_path)).get_metric_history(run.info.run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(1, 2.0), (2, 1.0)]


def test_merge_copies_runs_with_histories_and_artifacts_and_replaces_earlier_copies(tmp_path):
    first, second, merged = tmp_path / "shopee-train-a", tmp_path / "shopee-train-b", tmp_path / "all"
    logged_run(first, "a", [3.0, 2.0])
    logged_run(second, "b", [5.0])
    assert merge_store(first, merged) == ["a"]
    assert merge_store(second, merged) == ["b"]
    assert merge_store(first, merged) == ["a"], "merging again replaces the copy"
    runs = {run.info.run_name: run for run in runs_of(merged)}
    assert set(runs) == {"a", "b"}
    client = MlflowClient(tracking_uri=store_uri(merged))
    history = client.get_metric_history(runs["a"].info.run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(1, 3.0), (2, 2.0)]
    assert runs["a"].data.params["train.epochs"] == "2"
    assert runs["a"].data.tags[SOURCE_TAG].startswith("shopee-train-a/")
    assert runs["a"].info.status == "FINISHED"
    artifacts = [item.path for item in client.list_artifacts(runs["a"].info.run_id)]
    assert artifacts == ["curves.png"]


def test_pull_runs_merges_every_local_training_output(tmp_path):
    logged_run(tmp_path / "shopee-train-x", "x", [1.0])
    logged_run(tmp_path / "shopee-train-y", "y", [1.0])
    (tmp_path / "shopee-inference").mkdir()
    command = [sys.executable, "-m", "tools.kaggle.pull_runs", "--runs", str(tmp_path), "--no-download"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "2 run(s) in" in result.stdout and "mlflow ui --backend-store-uri sqlite:///" in result.stdout
    assert sorted(run.info.run_name for run in runs_of(tmp_path)) == ["x", "y"]
