"""lib.training.train (with lib.data.dataset and lib.models.embed): parameter groups, schedule, batches; a short
training on the sample that lowers the loss and beats the untrained model's CV, with its outputs; a killed run
continued to the same checkpoint as an unbroken one; two CPU processes (gloo) that end with the same weights."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from mlflow import MlflowClient

from lib.data.dataset import Collate
from lib.data.postings import read_postings
from lib.matching.cv import cv_scores
from lib.models import create_model, read_checkpoint
from lib.models.embed import eval_dataset, model_inputs, posting_embeddings
from lib.training import experiment, train
from lib.training.tracking import store_uri

ROOT = Path(__file__).resolve().parents[2]
COMPETITION_PLACE = Path("competitions") / train.COMPETITION  # where Kaggle mounts the competition today
TINY_IMAGE = {"backbone": "test_resnet", "weights": "random", "embedding": 32, "dropout": 0.0}
JOINT = {
    "folds": {"count": 4, "fold": 0},
    "train": {"epochs": 2, "batch_size": 32, "workers": 0, "lr": {"image": 3e-3, "text": 1e-4}},
    "image": {"sizes": [32, 48]},
    "valid": {"batch_size": 64},
    "model": {"image": TINY_IMAGE, "text": {"max_length": 12, "embedding": 64}, "fusion": {"linear_out": 64}},
}
IMAGE_ONLY = {
    "folds": {"count": 4, "fold": 0},
    "train": {"epochs": 2, "batch_size": 32, "workers": 0, "lr": {"image": 3e-3}},
    "image": {"sizes": [32]},
    "model": {
        "name": "image",
        "image": TINY_IMAGE,
        "text": None,
        "fusion": None,
        "heads": {"concat": None, "text": None},
    },
}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, minilm):
    """An input root in Kaggle's current layout with a 300-row sample as the competition and the offline MiniLM."""
    root = tmp_path_factory.mktemp("input")
    command = [sys.executable, "-m", "tools.data.make_sample", "--out", root / COMPETITION_PLACE, "--rows", "300"]
    subprocess.run([*map(str, command), "--seed", "3"], check=True, cwd=ROOT, capture_output=True)
    (root / "datasets" / "someone").mkdir(parents=True)
    (root / "datasets" / "someone" / "all-minilm-l6-v2").symlink_to(minilm, target_is_directory=True)
    return root


@pytest.fixture
def input_root(inputs, monkeypatch):
    monkeypatch.setenv("KERNEL_INPUT_DIR", str(inputs))
    return inputs


def run_script(code: str, inputs: Path, *args) -> subprocess.Popen:
    """A Python process running `code` with lib importable and `inputs` as the input root."""
    env = {**os.environ, "KERNEL_INPUT_DIR": str(inputs), "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], cwd=ROOT, env=env, stderr=subprocess.PIPE)


TRAIN_SCRIPT = """
import json, sys, torch
torch.use_deterministic_algorithms(True)
from lib.training import experiment, train
train.run(experiment.resolve(json.loads(sys.argv[1]), "test"), "resume", sys.argv[2])
"""


def test_parameters_are_grouped_by_part_with_their_learning_rates(input_root):
    config = experiment.resolve(JOINT, "test")
    model = create_model(train.model_config(config, 5))
    groups = train.parameter_groups(model, config["train"]["lr"], 0.01)
    names = {id(parameter): name for name, parameter in model.named_parameters()}
    seen = [names[id(parameter)] for group in groups for parameter in group["params"]]
    assert sorted(seen) == sorted(names.values()), "every parameter in exactly one group"
    for group in groups:
        assert group["lr"] == config["train"]["lr"][group["part"]]
        for parameter in group["params"]:
            name = names[id(parameter)]
            prefix = {"image": "image.backbone.", "text": "text.model.", "head": "heads."}.get(group["part"])
            assert name.startswith(prefix) if prefix else name.split(".")[1] in ("neck", "pool") or "fusion" in name
            assert group["weight_decay"] == (0.01 if parameter.ndim > 1 else 0.0), name
    assert {group["part"] for group in groups} == {"image", "text", "neck", "head"}


def test_learning_rate_warms_up_linearly_then_decays_by_cosine():
    factors = [train.lr_factor(update, 10, 4) for update in range(10)]
    assert factors[:4] == [0.25, 0.5, 0.75, 1.0]
    assert factors[4] == 1.0 and factors[-1] == pytest.approx(0.5 * (1 + np.cos(np.pi * 5 / 6)))
    assert all(a > b for a, b in zip(factors[4:], factors[5:]))
    assert train.lr_factor(0, 5, 0) == 1.0


def test_epoch_batches_share_one_permutation_between_processes():
    first, second = (train.epoch_batches(23, 4, seed=7, rank=rank, processes=2) for rank in (0, 1))
    assert len(first) == len(second) == 2 and all(len(batch) == 4 for batch in first + second)
    rows = [row for batch in first + second for row in batch]
    assert len(set(rows)) == 16 and max(rows) < 23
    assert train.epoch_batches(23, 4, seed=7, rank=0, processes=2) == first
    assert train.epoch_batches(23, 4, seed=8, rank=0, processes=2) != first
    with pytest.raises(ValueError, match="train.batch_size: 16 postings per process, but each of 2 process"):
        train.epoch_batches(23, 16, seed=0, rank=0, processes=2)


def untrained_cv(config: dict, comp: Path) -> float:
    """CV F1 of the union for the model as initialised by a training run, on the same validation fold."""
    _, classes, held, labels = train.split(config, comp)
    torch.manual_seed(config["seed"])
    model = create_model(train.model_config(config, int(classes.max()) + 1)).eval()
    loader = torch.utils.data.DataLoader(
        eval_dataset(model, held, comp / "train_images", experiment.size_at(config, 0)),
        64,
        collate_fn=Collate(),
    )
    with torch.no_grad():
        parts = [model.embed(model_inputs(model, batch)) for batch in loader]
    embeddings = {output: torch.cat([part[output] for part in parts]).numpy() for output in parts[0]}
    return cv_scores(embeddings, labels, 50)[0]["f1"]["union"]


@pytest.fixture(scope="module")
def trained(inputs, tmp_path_factory):
    """A short training of a tiny joint model on the sample, in this process."""
    out = tmp_path_factory.mktemp("trained")
    config = experiment.resolve(JOINT, "test")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KERNEL_INPUT_DIR", str(inputs))
        return config, train.run(config, "short", out), out


def test_a_short_training_lowers_the_loss_and_beats_the_untrained_model(trained, input_root):
    config, metrics, _ = trained
    first, last = metrics["epochs"]
    assert last["loss"] < first["loss"]
    assert all(last["losses"][output] < first["losses"][output] for output in ["concat", "image", "text"])
    assert [entry["image_size"] for entry in metrics["epochs"]] == [32, 48]
    assert set(last["cv"]) == {"concat", "image", "text", "union"}
    untrained = untrained_cv(config, input_root / COMPETITION_PLACE)
    assert metrics["best"]["cv"] > untrained


def test_outputs_are_a_weights_dataset_for_inference(trained, input_root):
    config, metrics, out = trained
    names = {path.name for path in out.iterdir()}
    expected = {"model.pt", "metrics.json", "oof_embeddings.npz", "training_curves.png", "f1_vs_threshold.png"}
    assert expected | {"mlflow.db", "mlartifacts"} <= names
    assert "last.pt" not in names, "the resume state goes once training ends"
    checkpoint = read_checkpoint(out / "model.pt")
    best = metrics["best"]["epoch"]
    assert checkpoint["extra"]["epoch"] == best and checkpoint["extra"]["config"] == config
    assert checkpoint["extra"]["image_size"] == metrics["epochs"][best - 1]["image_size"]
    assert checkpoint["extra"]["thresholds"] == metrics["epochs"][best - 1]["thresholds"]
    comp = input_root / COMPETITION_PLACE
    _, _, held, labels = train.split(config, comp)
    oof = np.load(out / "oof_embeddings.npz")
    assert list(oof["posting_id"]) == list(held.posting_id) and np.array_equal(oof["label_group"], labels)
    embeddings = posting_embeddings(out / "model.pt", held, comp / "train_images", workers=0)
    assert set(embeddings) == {"concat", "image", "text"}
    for output, values in embeddings.items():
        assert values.dtype == np.float32 and np.allclose(np.linalg.norm(values, axis=1), 1, atol=1e-5)
        assert np.abs(values - oof[output].astype(np.float32)).max() < 2e-3, output
    assert cv_scores(embeddings, labels, 50)[0]["f1"]["union"] == pytest.approx(metrics["best"]["cv"], abs=0.02)


def test_a_killed_run_continues_to_the_checkpoint_of_an_unbroken_run(inputs, tmp_path):
    config = json.dumps(IMAGE_ONLY)
    unbroken, resumed = tmp_path / "unbroken", tmp_path / "resumed"
    whole = run_script(TRAIN_SCRIPT, inputs, config, unbroken)
    killed = run_script(TRAIN_SCRIPT, inputs, config, resumed)
    while not (resumed / "last.pt").is_file() and killed.poll() is None:
        time.sleep(0.05)
    assert killed.poll() is None, killed.stderr.read().decode()[-2000:]
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    done = len(json.loads((resumed / "metrics.json").read_text())["epochs"])
    assert done == 1 and (resumed / "last.pt").is_file()
    assert whole.wait() == 0, whole.stderr.read().decode()[-2000:]
    continued = run_script(TRAIN_SCRIPT, inputs, config, resumed)
    assert continued.wait() == 0, continued.stderr.read().decode()[-2000:]
    first, second = (read_checkpoint(folder / "model.pt") for folder in (unbroken, resumed))
    assert first["extra"] == second["extra"]
    assert first["state_dict"].keys() == second["state_dict"].keys()
    for key, value in first["state_dict"].items():
        assert torch.equal(value, second["state_dict"][key]), key
    history = [json.loads((folder / "metrics.json").read_text())["epochs"] for folder in (unbroken, resumed)]
    assert history[0] == history[1] and len(history[0]) == 2
    client = MlflowClient(tracking_uri=store_uri(resumed))
    (run,) = client.search_runs([client.get_experiment_by_name("shopee-train").experiment_id])
    assert [m.step for m in client.get_metric_history(run.info.run_id, "loss")] == [1, 2]
    assert run.info.status == "FINISHED"


def test_resume_copies_a_killed_run_from_an_attached_source(input_root, tmp_path):
    killed = input_root / "notebooks" / "someone" / "shopee-train-exp001"
    (killed / "mlartifacts").mkdir(parents=True)
    (killed / "last.pt").write_bytes(b"state")
    (killed / "mlartifacts" / "plot.png").write_bytes(b"png")
    try:
        train.continue_from("shopee-train-exp001", tmp_path / "out")
        assert (tmp_path / "out" / "last.pt").read_bytes() == b"state"
        assert (tmp_path / "out" / "mlartifacts" / "plot.png").read_bytes() == b"png"
        (killed / "last.pt").unlink()
        with pytest.raises(FileNotFoundError, match="resume: no last.pt in .*shopee-train-exp001; give the output"):
            train.continue_from("shopee-train-exp001", tmp_path / "again")
    finally:
        shutil.rmtree(killed)


TWO_PROCESS_SCRIPT = """
import json, sys
from pathlib import Path
import torch
from accelerate import notebook_launcher
from lib.training import experiment, train
from lib.data import paths

def rank_weights(config, out):
    training = train.Training(config, "two", paths.input_dir(train.COMPETITION), out)
    training.fit()
    torch.save(training.unwrapped.state_dict(), out / f"rank{training.accelerator.process_index}.pt")
    torch.save(training.accelerator.num_processes, out / "processes.pt")

out = Path(sys.argv[2])
out.mkdir()
notebook_launcher(rank_weights, (experiment.resolve(json.loads(sys.argv[1]), "test"), out), num_processes=2)
"""


def test_two_processes_agree_on_the_weights(inputs, tmp_path):
    config = {**IMAGE_ONLY, "train": {**IMAGE_ONLY["train"], "epochs": 1}}
    out = tmp_path / "two"
    process = run_script(TWO_PROCESS_SCRIPT, inputs, json.dumps(config), out)
    assert process.wait() == 0, process.stderr.read().decode()[-3000:]
    assert torch.load(out / "processes.pt") == 2
    first, second = (torch.load(out / f"rank{rank}.pt") for rank in (0, 1))
    for key, value in first.items():
        assert torch.equal(value, second[key]), key
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["epochs"]) == 1 and metrics["epochs"][0]["cv"]["image"] > 0
    held = train.split(experiment.resolve(config, "test"), inputs / COMPETITION_PLACE)[2]
    assert len(np.load(out / "oof_embeddings.npz")["posting_id"]) == len(held), "validation gathered from both"
    initial = create_model_like(config, inputs)
    assert any(not torch.equal(value, initial[key]) for key, value in first.items() if value.is_floating_point())


def create_model_like(config: dict, inputs: Path) -> dict:
    """The initial weights of a training run of `config`."""
    resolved = experiment.resolve(config, "test")
    classes = train.split(resolved, inputs / COMPETITION_PLACE)[1]
    torch.manual_seed(resolved["seed"])
    return create_model(train.model_config(resolved, int(classes.max()) + 1)).state_dict()


def test_training_reads_the_competition_through_lib_data(input_root):
    frame = read_postings(input_root / COMPETITION_PLACE / "train.csv", labelled=True)
    fitted, classes, held, labels = train.split(experiment.resolve(JOINT, "test"), input_root / COMPETITION_PLACE)
    assert len(fitted) + len(held) == len(frame)
    assert not set(fitted.label_group) & set(held.label_group)
    assert classes.max() + 1 == fitted.label_group.nunique() and len(labels) == len(held)
    everything = train.split(
        experiment.resolve({**JOINT, "folds": {"fold": None}}, "test"), input_root / COMPETITION_PLACE
    )
    assert len(everything[0]) == len(frame) and everything[2] is None
    assert isinstance(everything[0], pd.DataFrame)


def test_accumulation_updates_once_per_group_of_steps(trained, input_root, tmp_path):
    """After the `trained` run in this process: a second training needs no reset of accelerate's state."""
    config = experiment.resolve({**IMAGE_ONLY, "train": {**IMAGE_ONLY["train"], "accumulate": 4}}, "t")
    training = train.Training(config, "accumulate", input_root / COMPETITION_PLACE, tmp_path)
    assert training.batches == len(training.fitted) // 32
    assert training.updates_per_epoch == -(-training.batches // 4) == 2
    before = [parameter.detach().clone() for parameter in training.model.parameters()]
    _, update = training.train_epoch(0, 0)
    assert update == training.updates_per_epoch
    assert any(not torch.equal(a, b) for a, b in zip(before, training.model.parameters()))
