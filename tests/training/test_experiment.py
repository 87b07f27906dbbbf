"""lib.training.experiment: defaults, merging of overrides, and config errors that name the file and the key."""

from pathlib import Path

import pytest
import yaml

from lib.training import experiment

EXPERIMENTS = Path(__file__).resolve().parents[2] / "kernels" / "shopee-train" / "experiments"
RANDOM = {"model": {"image": {"weights": "random"}}}  # the default image backbone, from random weights on purpose


def test_no_overrides_but_the_image_weights_give_the_defaults():
    config = experiment.resolve(RANDOM, "none")
    assert config == experiment.merged(experiment.defaults(), RANDOM)
    assert config["train"]["lr"] == {"image": 1e-4, "text": 2e-5, "neck": 1e-3, "head": 1e-3}


def test_an_image_backbone_without_weights_is_refused_naming_the_file_the_key_and_the_fix(tmp_path):
    path = tmp_path / "exp009.yaml"
    path.write_text("train: {epochs: 3}\n")
    with pytest.raises(ValueError) as refused:
        experiment.load_experiment(path)
    assert str(refused.value).startswith(
        f"{path}: model.image.weights: not set, so the efficientnet_b3 backbone would train from random weights; "
    )
    for fix in ["dataset_sources", "model.image.weights: <slug>/<file>", "/kaggle/input", "weights: random"]:
        assert fix in str(refused.value)
    with pytest.raises(ValueError, match="none: model.image.weights: not set"):
        experiment.resolve(None, "none")
    path.write_text("model: {image: {weights: random}}\n")
    assert experiment.load_experiment(path)["model"]["image"]["weights"] == "random"
    text_only = {"model": {"name": "text", "image": None, "fusion": None, "heads": {"concat": None, "image": None}}}
    assert "image" not in experiment.resolve(text_only, "text.yaml")["model"]


def test_overrides_merge_key_by_key():
    config = experiment.resolve(
        {"train": {"epochs": 3, "lr": {"text": 3e-5}}, "model": {"image": {"pool": "avg", "weights": "random"}}}, "x"
    )
    defaults = experiment.defaults()
    assert config["train"]["epochs"] == 3
    assert config["train"]["batch_size"] == defaults["train"]["batch_size"]
    assert config["train"]["lr"] == {**defaults["train"]["lr"], "text": 3e-5}
    assert config["model"]["image"] == {**defaults["model"]["image"], "pool": "avg", "weights": "random"}
    assert experiment.defaults() == defaults, "resolving must not change the defaults"


def test_null_removes_a_model_section():
    overrides = {"model": {"name": "text", "image": None, "fusion": None, "heads": {"concat": None, "image": None}}}
    config = experiment.resolve(overrides, "x")
    assert set(config["model"]) == {"name", "text", "heads"}
    assert set(config["model"]["heads"]) == {"text"}


def test_exponents_written_without_a_dot_are_floats(tmp_path):
    path = tmp_path / "lr.yaml"
    path.write_text("train:\n  lr: {text: 3e-5}\n  warmup: .05\nmodel: {image: {weights: random}}\n")
    assert yaml.safe_load(path.read_text())["train"]["lr"]["text"] == "3e-5"  # PyYAML's YAML 1.1 reading
    config = experiment.load_experiment(path)
    assert config["train"]["lr"]["text"] == 3e-5
    assert config["train"]["warmup"] == 0.05


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("trian: {epochs: 2}", "bad.yaml: trian: unknown key; the keys here are ['folds', 'image', 'model'"),
        ("train: {lrr: 0.1}", "bad.yaml: train.lrr: unknown key; the keys here are ['accumulate', 'amp'"),
        ("train: {lr: {bert: 0.1}}", "bad.yaml: train.lr.bert: unknown key; the keys here are ['head', 'image'"),
        ("train: {epochs: '3'}", "bad.yaml: train.epochs: '3' is not an integer >= 1"),
        ("train: {epochs: 2.5}", "bad.yaml: train.epochs: 2.5 is not an integer >= 1"),
        ("train: {amp: 1}", "bad.yaml: train.amp: 1 is not true or false"),
        ("train: {clip: off}", "bad.yaml: train.clip: False is not a number or null"),
        ("train: 5", "bad.yaml: train: 5 is not a mapping"),
        ("image: {sizes: 256}", "bad.yaml: image.sizes: 256 is not a non-empty list of integers >= 16; one image size"),
        ("image: {sizes: [224, '256']}", "bad.yaml: image.sizes.1: '256' is not an integer >= 16"),
        ("image: {augment: {cutout: yes}}", "bad.yaml: image.augment.cutout: True is not a number"),
        ("model: [joint]", "bad.yaml: model: ['joint'] is not a mapping"),
        ("model: {name: bert}", "bad.yaml: model.name: 'bert' is not one of ['image', 'joint', 'text']"),
        ("model: {image: {dropout: '0.2'}}", "bad.yaml: model.image.dropout: '0.2' is not a number"),
        ("model: {heads: {text: {kind: arcfce}}}", "bad.yaml: model.heads.text.kind: 'arcfce' is not one of"),
        ("model: {text: {pol: mean}}", "bad.yaml: model.text.pol: unknown key; the keys here are"),
        ("folds: {fold: 5}", "bad.yaml: folds.fold: 5 is not in 0..4 (or null: all data)"),
        (
            "folds: {count: 1, fold: 0}",
            "bad.yaml: folds.count: 1 is not an integer >= 2; a validation fold needs 2 folds or more",
        ),
        ("train: {accumulate: 0}", "bad.yaml: train.accumulate: 0 is not an integer >= 1"),
        ("train: {warmup: 1.5}", "bad.yaml: train.warmup: 1.5 is a share of the updates, in [0, 1)"),
        ("image: {sizes: []}", "bad.yaml: image.sizes: [] is not a non-empty list of integers >= 16"),
        ("image: {augment: {crop_scale: [0.9, 0.5]}}", "bad.yaml: image.augment.crop_scale: [0.9, 0.5] must be"),
        ("- 1", "bad.yaml: (top level): [1] is not a mapping"),
    ],
)
def test_config_errors_name_the_file_and_the_key(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text + "\n")
    with pytest.raises(ValueError) as error:
        experiment.load_experiment(path)
    assert str(error.value).startswith(str(tmp_path / message.split(": ", 1)[0]) + ": ")
    assert message.split(": ", 1)[1] in str(error.value)


def test_missing_experiment_lists_the_known_ones(tmp_path):
    (tmp_path / "exp001.yaml").write_text("{}\n")
    with pytest.raises(FileNotFoundError, match=r"exp002.yaml: no such experiment; the experiments are \['exp001'\]"):
        experiment.load_experiment(tmp_path / "exp002.yaml")


def test_invalid_yaml_names_the_file(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("train: {epochs: 2\n")
    with pytest.raises(ValueError, match="broken.yaml: not valid YAML"):
        experiment.load_experiment(path)


@pytest.mark.parametrize("path", sorted(EXPERIMENTS.glob("*.yaml")), ids=lambda path: path.stem)
def test_every_shipped_experiment_is_valid(path):
    experiment.load_experiment(path)


def test_image_size_per_epoch_repeats_the_last():
    config = experiment.resolve({**RANDOM, "image": {"sizes": [64, 96]}}, "x")
    assert [experiment.size_at(config, epoch) for epoch in range(4)] == [64, 96, 96, 96]
