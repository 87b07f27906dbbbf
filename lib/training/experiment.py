"""Training experiments: the default config, an experiment's overrides merged into it, every key and type checked.

An experiment is a short mapping of overrides (kernels/shopee-train/experiments/<name>.yaml) of the defaults in SCHEMA
(lib.schema), merged section by section; unknown keys and wrongly typed values are errors naming the file and the key.
The `model` section is a lib.models config without `num_classes`, checked by lib.models.config; a model with an image
branch must name its backbone's weights (`image.weights`: a path under the input root, or `random` on purpose). The
options and their defaults: docs/training.md, *Experiment options*.
"""

import copy
import re
from pathlib import Path

import yaml

from lib import schema
from lib.models.config import validate_config


def setting(kind: str, default, **more) -> dict:
    """The schema node of one option: its type, its default and any bounds."""
    return {"type": kind, "default": default, **more}


def options(keys: dict) -> dict:
    """The schema node of a section of options, each at its default when left out."""
    return {"type": "mapping", "keys": keys, "default": {}}


DEFAULT_MODEL = {
    "name": "joint",
    "image": {"backbone": "efficientnet_b3", "pool": "gem", "dropout": 0.2, "embedding": 512},
    "text": {"model_dir": "all-minilm-l6-v2", "pool": "mean", "max_length": 64, "embedding": 512},
    "fusion": {"kind": "concat", "linear_out": 1024},
    "heads": {
        "concat": {"kind": "arcface", "margin": 0.3, "margin_end": 0.5},
        "image": {"kind": "arcface", "margin": 0.3},
        "text": {"kind": "arcface", "margin": 0.3},
    },
}
SCHEMA = {
    "type": "mapping",
    "keys": {
        "seed": setting("int", 42),
        "folds": options(
            {
                "count": setting("int", 5, low=2, fix="a validation fold needs 2 folds or more"),
                "fold": setting("int", 0, null=True),
            }
        ),
        "train": options(
            {
                "epochs": setting("int", 10, low=1),
                "batch_size": setting("int", 32, low=1),
                "accumulate": setting("int", 1, low=1),
                "lr": options(
                    {
                        "image": setting("number", 1e-4),
                        "text": setting("number", 2e-5),
                        "neck": setting("number", 1e-3),
                        "head": setting("number", 1e-3),
                    }
                ),
                "weight_decay": setting("number", 0.01),
                "warmup": setting("number", 0.1),
                "clip": setting("number", 1.0, null=True),
                "amp": setting("bool", True),
                "workers": setting("int", 2),
            }
        ),
        "image": options(
            {
                "sizes": setting(
                    "list",
                    [256],
                    items={"type": "int", "low": 16},
                    non_empty=True,
                    fix="one image size per epoch, the last repeating",
                ),
                "augment": options(
                    {
                        "crop_scale": setting("list", [0.5, 1.0], items={"type": "number"}),
                        "flip": setting("number", 0.5),
                        "rotate": setting("number", 15.0),
                        "colour": setting("number", 0.2),
                        "cutout": setting("number", 0.5),
                    }
                ),
            }
        ),
        "valid": options({"batch_size": setting("int", 64), "k": setting("int", 50)}),
        "resume": setting("str", None, null=True),
        "model": setting("mapping", DEFAULT_MODEL, values={"type": "any"}),  # checked by lib.models.config, merged
    },
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


def defaults() -> dict:
    """The default config: every option of the schema at its default."""
    return schema.check({}, SCHEMA, "the defaults")


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


def check_values(config: dict, source: str) -> None:
    """Raise naming `source` and the key for values of the right type that cannot work together."""
    folds, train = config["folds"], config["train"]
    if folds["fold"] is not None and not 0 <= folds["fold"] < folds["count"]:
        raise schema.error(
            source, ("folds", "fold"), f"{folds['fold']} is not in 0..{folds['count'] - 1} (or null: all data)"
        )
    if not 0 <= train["warmup"] < 1:
        raise schema.error(source, ("train", "warmup"), f"{train['warmup']} is a share of the updates, in [0, 1)")
    scale = config["image"]["augment"]["crop_scale"]
    if len(scale) != 2 or not 0 < scale[0] <= scale[1] <= 1:
        raise schema.error(
            source, ("image", "augment", "crop_scale"), f"{scale} must be [low, high] with 0 < low <= high <= 1"
        )


def check_model(model: dict, source: str) -> None:
    """Raise naming `source` and the key where lib.models would refuse the model section."""
    name = model.get("name")
    if name not in BRANCHES:
        raise schema.error(source, ("model", "name"), f"{name!r} is not one of {sorted(BRANCHES)}")
    validate_config({**model, "num_classes": 2}, BRANCHES[name], source, ("model",))
    image = model.get("image")
    if image is not None and image.get("weights") is None:
        raise schema.error(
            source,
            ("model", "image", "weights"),
            f"not set, so the {image['backbone']} backbone would train from random "
            "weights; attach pretrained weights (upload the timm state dict file as a dataset, add its slug to "
            "dataset_sources in kernels/shopee-train/kernel.yaml and set model.image.weights: <slug>/<file>, the "
            f"file's path under /kaggle/input), or set model.image.weights: {RANDOM_WEIGHTS} to train from random "
            "weights on purpose",
        )


def resolve(overrides: dict | None, source: str) -> dict:
    """The complete config of an experiment: the defaults with its overrides, checked; errors name `source`."""
    overrides = numbers(overrides or {})
    schema.check(overrides, SCHEMA, source)
    config = merged(defaults(), overrides)
    check_values(config, source)
    check_model(config["model"], source)
    return config


def load_experiment(path: Path) -> dict:
    """The complete config of the experiment file at `path` (YAML overrides of the defaults)."""
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
