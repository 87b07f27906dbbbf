"""kernels/shopee-train end to end: an experiment's kernel (tools.delivery.experiment_kernel) built and run offline by
a real Jupyter kernel on the sample; its output folder is a weights dataset that inference can embed with."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
import yaml

import build
from lib.models import read_checkpoint
from lib.models.embed import posting_embeddings
from tools.delivery import experiment_kernel

ROOT = Path(__file__).resolve().parent.parent
KERNEL = ROOT / "kernels" / "shopee-train"
EXPERIMENT = "test-tiny"
TINY = {
    "folds": {"count": 4, "fold": 1},
    "train": {"epochs": 1, "batch_size": 32, "workers": 1},
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
    run("tools/make_sample.py", "--out", folder, "--rows", 300, "--seed", 4)
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


def test_an_experiment_kernel_trains_offline_into_a_weights_dataset(sample, tmp_path):
    kernels = tmp_path / "kernels"
    shutil.copytree(KERNEL, kernels / "shopee-train")
    (kernels / "shopee-train" / "experiments" / f"{EXPERIMENT}.yaml").write_text(yaml.safe_dump(TINY))
    name = f"shopee-train-{EXPERIMENT}"
    build.build_kernel(experiment_kernel(kernels / "shopee-train", EXPERIMENT, tmp_path / "build"), tmp_path / "build")
    log = run("tools/run_kernel.py", name, "--comp", sample, "--runs", tmp_path / "runs", "--build", tmp_path / "build")
    out = tmp_path / "runs" / name
    assert "finished in" in log and "model.pt" in log
    executed = nbformat.read(out / f"{name}.ipynb", as_version=4)
    printed = "".join(o.get("text", "") for cell in executed["cells"] for o in cell.get("outputs", []))
    assert f"experiment {EXPERIMENT} (kernels/shopee-train/experiments/{EXPERIMENT}.yaml)" in printed
    assert "best epoch 1 of 1" in printed
    checkpoint = read_checkpoint(out / "model.pt")
    assert checkpoint["extra"]["experiment"] == EXPERIMENT and checkpoint["config"]["name"] == "image"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["config"]["folds"]["fold"] == 1 and set(metrics["epochs"][0]["cv"]) == {"image", "union"}
    assert (out / "mlflow.db").is_file() and not (out / "last.pt").exists()
    test = pd.read_csv(sample / "test.csv")
    embeddings = posting_embeddings(out / "model.pt", test, sample / "test_images", workers=0)
    assert embeddings["image"].shape == (len(test), 32)
    assert np.allclose(np.linalg.norm(embeddings["image"], axis=1), 1, atol=1e-5)
