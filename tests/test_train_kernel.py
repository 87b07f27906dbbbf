"""kernels/shopee-train end to end: an experiment's kernel (tools.kaggle.kernels.experiment_kernel) built and run
offline by a real Jupyter kernel on the sample; its output folder is a weights dataset that inference can embed with."""

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
import yaml

import build
from lib.models import read_checkpoint
from lib.models.embed import posting_embeddings
from tools.kaggle.kernels import experiment_kernel

ROOT = Path(__file__).resolve().parent.parent
KERNEL = ROOT / "kernels" / "shopee-train"
EXPERIMENT = "test-tiny"
TINY = {
    "folds": {"count": 4, "fold": 1},
    "train": {"epochs": 2, "batch_size": 32, "workers": 1},
    "image": {"sizes": [32]},
    "model": {
        "name": "image",
        "image": {"backbone": "test_resnet", "weights": "random", "embedding": 32},
        "text": None,
        "fusion": None,
        "heads": {"concat": None, "text": None},
    },
}


def run(*args) -> str:
    result = subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


@pytest.fixture(scope="module")
def sample(tmp_path_factory, local_datasets):
    folder = tmp_path_factory.mktemp("data") / "sample"
    run("-m", "tools.data.make_sample", "--out", folder, "--rows", 300, "--seed", 4)
    return folder


def test_the_plain_build_and_every_experiment_build_pass_the_offline_checks(tmp_path):
    build.build_kernel(KERNEL, tmp_path)
    notebook = nbformat.read(tmp_path / "shopee-train" / "shopee-train.ipynb", as_version=4)
    heads = [cell.source.split("\n")[0] for cell in notebook.cells]
    inlined = {head.split("/lib/")[-1] for head in heads if head.startswith("%%writefile")}
    training = {"training/train.py", "training/experiment.py", "training/tracking.py"}
    assert training | {"data/augment.py", "data/images.py", "data/folds.py"} <= inlined
    for path in sorted((KERNEL / "experiments").glob("*.yaml")):
        built = build.build_kernel(experiment_kernel(KERNEL, path.stem, tmp_path), tmp_path)
        metadata = json.loads((built / "kernel-metadata.json").read_text())
        assert metadata["id"].endswith(f"/shopee-train-{path.stem}") and metadata["enable_internet"] is False


def timed_lines(command: list) -> list[tuple[float, str]]:
    """The lines a command prints (stdout and stderr), each with the seconds since it started; it must succeed."""
    started = time.monotonic()
    with subprocess.Popen(
        [str(part) for part in command], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT
    ) as process:
        lines = [(time.monotonic() - started, line.rstrip("\n")) for line in process.stdout]
    assert process.returncode == 0, "\n".join(line for _, line in lines)[-3000:]
    return lines + [(time.monotonic() - started, "")]


def test_an_experiment_trains_offline_into_a_weights_dataset_showing_each_epoch_as_it_ends(sample, tmp_path):
    kernels = tmp_path / "kernels"
    shutil.copytree(KERNEL, kernels / "shopee-train")
    (kernels / "shopee-train" / "experiments" / f"{EXPERIMENT}.yaml").write_text(yaml.safe_dump(TINY))
    name = f"shopee-train-{EXPERIMENT}"
    options = ["--comp", sample, "--kernels", kernels, "--runs", tmp_path / "runs", "--build", tmp_path / "build"]
    lines = timed_lines([sys.executable, "-m", "tools.local.train", EXPERIMENT, *options])  # what `make train` runs
    first_epoch = next(when for when, line in lines if line.startswith("epoch 1: loss "))
    assert lines[-1][0] - first_epoch > 3, "the first epoch's line came as it ended, not with the rest at the end"
    assert any(line.startswith("epoch 2/2 32px: 100%|") for _, line in lines), "the progress bar's last state"
    assert not any("Kernel is running over TCP" in line or "IProgress" in line for _, line in lines)
    log = "\n".join(line for _, line in lines)
    out = tmp_path / "runs" / name
    assert "finished in" in log and "model.pt" in log
    executed = nbformat.read(out / f"{name}.ipynb", as_version=4)
    printed = "".join(o.get("text", "") for cell in executed["cells"] for o in cell.get("outputs", []))
    assert f"experiment {EXPERIMENT} (kernels/shopee-train/experiments/{EXPERIMENT}.yaml)" in printed
    assert re.search(r"best epoch [12] of 2", printed)
    checkpoint = read_checkpoint(out / "model.pt")
    assert checkpoint["extra"]["experiment"] == EXPERIMENT and checkpoint["config"]["name"] == "image"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["config"]["folds"]["fold"] == 1 and set(metrics["epochs"][0]["cv"]) == {"image", "union"}
    assert (out / "mlflow.db").is_file() and not (out / "last.pt").exists()
    test = pd.read_csv(sample / "test.csv")
    embeddings = posting_embeddings(out / "model.pt", test, sample / "test_images", workers=0)
    assert embeddings["image"].shape == (len(test), 32)
    assert np.allclose(np.linalg.norm(embeddings["image"], axis=1), 1, atol=1e-5)


def test_make_train_refuses_an_unknown_experiment_in_one_line_naming_the_known_ones(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "tools.local.train", "no-such-exp", "--build", tmp_path / "build", "--runs", tmp_path],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    known = sorted(path.stem for path in (KERNEL / "experiments").glob("*.yaml"))
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == (
        f"train: unknown experiment 'no-such-exp': give EXP=<name> of {KERNEL / 'experiments'}/<name>.yaml: {known}\n"
    )
