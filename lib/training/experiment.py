"""Training experiments: the default config, an experiment's overrides merged into it, every key and type checked.

An experiment is a short mapping of overrides (kernels/shopee-train/experiments/<name>.yaml) of DEFAULTS; sections
merge key by key, so `train: {epochs: 5}` keeps every other training option. Unknown keys and wrongly typed values
are errors that name the file and the key. The `model` section is a lib.models config without `num_classes` (the
training label groups give it), checked by lib.models.config; its `image.weights` and `text.model_dir` are paths
under the input root (`<dataset slug>/<file>`), so one experiment runs on Kaggle and locally alike. A model with an
image branch must say where its backbone's weights come from: `image.weights` is such a path, or `random` to train
from random weights on purpose (left unset, the experiment is refused).

    seed            seeds the folds, the initial weights, the batch order and the augmentations
    folds           count: GroupKFold folds on label_group, stratified by group size (lib.data.folds); fold: the
                    validation fold, or null to train on every row (final models: no validation, last epoch kept)
    train           epochs; batch_size (postings per process and step); accumulate (steps per optimizer update);
                    lr (image: backbone, text: transformer, neck: pooling, projections and fusion, head: margin
                    heads); weight_decay (not on biases and norms); warmup (share of the updates, linear, then
                    cosine to 0); clip (gradient norm, null: none); amp (float16 autocast on CUDA); workers
    image           sizes: image size of each epoch (progressive; the last repeats); augment (lib.data.augment)
    valid           batch_size, k (neighbours per posting for the threshold search)
    resume          null, or `<slug>[/folder]` of an attached source holding a killed run's last.pt to continue
    model           the lib.models config (name, image, text, fusion, heads, triplet, contrastive); in it a null
                    removes a section of the default (`image: null` for a text model, `heads: {concat: null}`)
"""

import copy
import re
from pathlib import Path
from typing import get_args, get_origin

import yaml

from lib.models.config import accepts, described, validate_config

SCHEMA = {
    "seed": (int, 42),
    "folds": {"count": (int, 5), "fold": (int | None, 0)},
    "train": {
        "epochs": (int, 10),
        "batch_size": (int, 32),
        "accumulate": (int, 1),
        "lr": {"image": (float, 1e-4), "text": (float, 2e-5), "neck": (float, 1e-3), "head": (float, 1e-3)},
        "weight_decay": (float, 0.01),
        "warmup": (float, 0.1),
        "clip": (float | None, 1.0),
        "amp": (bool, True),
        "workers": (int, 2),
    },
    "image": {
        "sizes": (list[int], [256]),
        "augment": {
            "crop_scale": (list[float], [0.5, 1.0]),
            "flip": (float, 0.5),
            "rotate": (float, 15.0),
            "colour": (float, 0.2),
            "cutout": (float, 0.5),
        },
    },
    "valid": {"batch_size": (int, 64), "k": (int, 50)},
    "resume": (str | None, None),
    "model": (
        dict,
        {
            "name": "joint",
            "image": {"backbone": "efficientnet_b3", "pool": "gem", "dropout": 0.2, "embedding": 512},
            "text": {"model_dir": "all-minilm-l6-v2", "pool": "mean", "max_length": 64, "embedding": 512},
            "fusion": {"kind": "concat", "linear_out": 1024},
            "heads": {
                "concat": {"kind": "arcface", "margin": 0.3, "margin_end": 0.5},
                "image": {"kind": "arcface", "margin": 0.3},
                "text": {"kind": "arcface", "margin": 0.3},
            },
        },
    ),
}
BRANCHES = {"image": ("image",), "text": ("text",), "joint": ("image", "text")}
RANDOM_WEIGHTS = "random"  # model.image.weights of a backbone trained from random weights on purpose
EXPONENT_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def numbers(value):
    """`value` with strings such as '3e-5' made floats: PyYAML reads exponents without a dot as text (YAML 1.1)."""
    if isinstance(value, dict):
        return {key: numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [numbers(item) for item in value]
    return float(value) if isinstance(value, str) and EXPONENT_FLOAT.fullmatch(value) else value


def defaults(schema: dict = SCHEMA) -> dict:
    """The default config: every option of the schema at its default."""
    return {key: defaults(spec) if isinstance(spec, dict) else copy.deepcopy(spec[1]) for key, spec in schema.items()}


def fits(annotation, value) -> bool:
    """Whether `value` fits the annotation: lib.models.config's rule, plus lists of one type."""
    if get_origin(annotation) is list:
        return isinstance(value, list) and all(accepts(get_args(annotation)[0], item) for item in value)
    return accepts(annotation, value)


def merged(base: dict, overrides: dict) -> dict:
    """`base` with `overrides` merged in, mapping into mapping, any other value replacing; null removes a mapping
    (`model: {image: null}` drops the image branch)."""
    result = copy.deepcopy(base)
    for key, value in overrides.items():
        if value is None and isinstance(result.get(key), dict):
            del result[key]
        elif isinstance(result.get(key), dict) and isinstance(value, dict):
            result[key] = merged(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def check(overrides, schema: dict, source: str, where: str = "") -> None:
    """Raise naming `source` and the key for an unknown key or a value that does not fit its option."""
    if not isinstance(overrides, dict):
        raise ValueError(f"{source}: {where or 'the experiment'} must be a mapping of options, not {overrides!r}")
    for key, value in overrides.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in schema:
            raise ValueError(f"{source}: {path}: unknown key; the keys here are {sorted(schema)}")
        spec = schema[key]
        if isinstance(spec, dict):
            check(value, spec, source, path)
        elif not fits(spec[0], value):
            raise ValueError(f"{source}: {path}: {value!r} is not {type_name(spec[0])}")


def type_name(annotation) -> str:
    """The annotation in words."""
    if get_origin(annotation) is list:
        return f"a list of {described(get_args(annotation)[0])}"
    return "a mapping" if annotation is dict else described(annotation)


def check_values(config: dict, source: str) -> None:
    """Raise naming `source` and the key for values of the right type that cannot work together."""
    folds, train = config["folds"], config["train"]
    if folds["count"] < 2:
        raise ValueError(f"{source}: folds.count: {folds['count']} folds cannot hold a validation fold; use 2 or more")
    if folds["fold"] is not None and not 0 <= folds["fold"] < folds["count"]:
        raise ValueError(f"{source}: folds.fold: {folds['fold']} is not in 0..{folds['count'] - 1} (or null: all data)")
    for key in ["epochs", "batch_size", "accumulate"]:
        if train[key] < 1:
            raise ValueError(f"{source}: train.{key}: {train[key]} must be at least 1")
    if not 0 <= train["warmup"] < 1:
        raise ValueError(f"{source}: train.warmup: {train['warmup']} is a share of the updates, in [0, 1)")
    sizes = config["image"]["sizes"]
    if not sizes or min(sizes) < 16:
        raise ValueError(f"{source}: image.sizes: {sizes} needs one size of at least 16 px per epoch (or one in all)")
    scale = config["image"]["augment"]["crop_scale"]
    if len(scale) != 2 or not 0 < scale[0] <= scale[1] <= 1:
        raise ValueError(f"{source}: image.augment.crop_scale: {scale} must be [low, high] with 0 < low <= high <= 1")


def check_model(model: dict, source: str) -> None:
    """Raise naming `source` and the key where lib.models would refuse the model section."""
    name = model.get("name")
    if name not in BRANCHES:
        raise ValueError(f"{source}: model.name: {name!r} is not one of {sorted(BRANCHES)}")
    try:
        validate_config({**model, "num_classes": 2}, BRANCHES[name])
    except ValueError as error:
        raise ValueError(f"{source}: {error}") from error
    image = model.get("image")
    if image is not None and image.get("weights") is None:
        raise ValueError(
            f"{source}: model.image.weights: not set, so the {image['backbone']} backbone would train from random "
            "weights; attach pretrained weights (upload the timm state dict file as a dataset, add its slug to "
            "dataset_sources in kernels/shopee-train/kernel.yaml and set model.image.weights: <slug>/<file>, the "
            f"file's path under /kaggle/input), or set model.image.weights: {RANDOM_WEIGHTS} to train from random "
            "weights on purpose"
        )


def resolve(overrides: dict | None, source: str) -> dict:
    """The complete config of an experiment: DEFAULTS with its overrides, checked; errors name `source`."""
    overrides = numbers(overrides or {})
    check(overrides, SCHEMA, source)
    config = merged(defaults(), overrides)
    check_values(config, source)
    check_model(config["model"], source)
    return config


def load_experiment(path: Path) -> dict:
    """The complete config of the experiment file at `path` (YAML overrides of DEFAULTS)."""
    if not path.is_file():
        known = sorted(p.stem for p in path.parent.glob("*.yaml"))
        raise FileNotFoundError(f"{path}: no such experiment; the experiments are {known}")
    try:
        overrides = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ValueError(f"{path}: not valid YAML: {error}") from error
    return resolve(overrides, str(path))


def size_at(config: dict, epoch: int) -> int:
    """The image size of an epoch (0-based): its entry of image.sizes, the last one past the end."""
    sizes = config["image"]["sizes"]
    return sizes[min(epoch, len(sizes) - 1)]
