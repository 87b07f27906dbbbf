"""MLflow tracking into a store inside a run's output folder, and the merge of such stores into one.

A training run logs to `<output>/mlflow.db` (MLflow's SQLite store; its file store is deprecated) with artifacts in
`<output>/mlartifacts/`: the experiment's flattened config as params, per-epoch metrics, the plots. All runs go to
the MLflow experiment EXPERIMENT, named by their experiment (`exp001`), so `mlflow ui` lays them side by side.
`merge_store` copies the runs of one output folder into another store (the local runs/mlflow.db of `make
pull-runs`), replacing an earlier copy of the same run; artifacts are read from the output folder itself, wherever
the run logged them (Kaggle's /kaggle/working).
"""

import logging
import time
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag

EXPERIMENT = "shopee-train"
STORE = "mlflow.db"
ARTIFACTS = "mlartifacts"
SOURCE_TAG = "shopee.source_run"
BATCH = 900  # MLflow's log_batch takes at most 1000 metrics per call

for noisy in ["mlflow.store.db.utils", "alembic.runtime.migration"]:  # the store's schema set-up, logged at INFO
    logging.getLogger(noisy).setLevel(logging.WARNING)


def store_uri(folder: Path) -> str:
    """The MLflow tracking URI of the store in `folder`."""
    return f"sqlite:///{(Path(folder) / STORE).resolve()}"


def client_of(folder: Path) -> MlflowClient:
    """A client of the store in `folder` (made when missing)."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    return MlflowClient(tracking_uri=store_uri(folder))


def experiment_id(client: MlflowClient, folder: Path) -> str:
    """The id of EXPERIMENT in the store, made with its artifacts under folder/mlartifacts when missing."""
    found = client.get_experiment_by_name(EXPERIMENT)
    if found is not None:
        return found.experiment_id
    return client.create_experiment(EXPERIMENT, artifact_location=(Path(folder) / ARTIFACTS).resolve().as_uri())


def flatten(config: dict, prefix: str = "") -> dict[str, str]:
    """Nested options as MLflow params: dotted keys, values as text."""
    flat = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        flat |= flatten(value, f"{name}.") if isinstance(value, dict) else {name: str(value)}
    return flat


class Tracker:
    """One MLflow run in the store of an output folder: started, or continued when `run_id` is given (a resume)."""

    def __init__(self, folder: Path, name: str, config: dict, run_id: str | None = None):
        self.client = client_of(folder)
        if run_id is None:
            run = self.client.create_run(experiment_id(self.client, folder), run_name=name)
            self.run_id = run.info.run_id
            params = [Param(key, value[:6000]) for key, value in flatten(config).items()]
            for start in range(0, len(params), 100):
                self.client.log_batch(self.run_id, params=params[start : start + 100])
        else:
            self.run_id = run_id
            self.client.update_run(run_id, status="RUNNING")

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        """Metrics of one epoch (`step`, 1-based), in one write."""
        now = int(time.time() * 1000)
        batch = [Metric(key, float(value), now, step) for key, value in metrics.items()]
        self.client.log_batch(self.run_id, metrics=batch)

    def log_artifact(self, path: Path) -> None:
        """Copy a file (a plot, the metrics) into the run's artifacts, replacing an earlier copy."""
        self.client.log_artifact(self.run_id, str(path))

    def finish(self) -> None:
        """Mark the run finished."""
        self.client.set_terminated(self.run_id)


def merge_store(source: Path, target: Path) -> list[str]:
    """Copy every run of the store in output folder `source` into the store in folder `target`; the run names.

    A run copied before (same source run id) is replaced, so a run pulled again while it trained gets its new epochs.
    """
    if not (Path(source) / STORE).is_file():
        raise FileNotFoundError(f"{Path(source) / STORE}: no MLflow store; is {source} a training kernel's output?")
    reader, writer = client_of(source), client_of(target)
    into = experiment_id(writer, target)
    names = []
    for experiment in reader.search_experiments():
        for run in reader.search_runs([experiment.experiment_id]):
            tag = f"{Path(source).resolve().name}/{run.info.run_id}"
            for earlier in writer.search_runs([into], filter_string=f"tags.`{SOURCE_TAG}` = '{tag}'"):
                writer.delete_run(earlier.info.run_id)
            copy_run(reader, writer, run, into, tag, Path(source) / ARTIFACTS / experiment_relative(experiment, run))
            names.append(run.info.run_name)
    return names


def experiment_relative(experiment, run) -> str:
    """Where a run's artifacts lie under its experiment's artifact folder (e.g. `<run id>/artifacts`)."""
    return run.info.artifact_uri.removeprefix(experiment.artifact_location).lstrip("/")


def copy_run(reader: MlflowClient, writer: MlflowClient, run, into: str, tag: str, artifacts: Path) -> None:
    """Copy one run's params, tags, full metric histories and artifact files into experiment `into` of writer."""
    copied = writer.create_run(into, start_time=run.info.start_time, run_name=run.info.run_name).info.run_id
    params = [Param(key, value) for key, value in run.data.params.items()]
    tags = [RunTag(key, value) for key, value in run.data.tags.items()] + [RunTag(SOURCE_TAG, tag)]
    metrics = [
        Metric(key, point.value, point.timestamp, point.step)
        for key in run.data.metrics
        for point in reader.get_metric_history(run.info.run_id, key)
    ]
    for start in range(0, len(params), 100):
        writer.log_batch(copied, params=params[start : start + 100])
    writer.log_batch(copied, tags=tags)
    for start in range(0, len(metrics), BATCH):
        writer.log_batch(copied, metrics=metrics[start : start + BATCH])
    if artifacts.is_dir():
        writer.log_artifacts(copied, str(artifacts))
    writer.set_terminated(copied, status=run.info.status, end_time=run.info.end_time)
