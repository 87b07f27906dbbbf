"""The tuned inference config (inference_config.json) that the optimize-ensemble kernel writes and inference reads.

A plan names its models (training checkpoints; frozen sentence, timm image and CLIP / SigLIP encoders), its components
(weighted model outputs, optionally blended, or TF-IDF of the titles), the matching rules over them, their CV and
optionally a second stage. SCHEMA describes it (lib.schema); `read_tuned_config` reads and checks one, each error
naming the file and the key path. TITLE_PLAN is the plan of title signals for a kernel without trained models.
The format, key by key: docs/inference.md, *The plan*.
"""

import json
from pathlib import Path

from lib import schema
from lib.data.text import ANALYZERS
from lib.matching.pairs import NO_MATCH
from lib.second_stage import graph
from lib.second_stage.pair_features import component_feature_names, image_text_feature_name

OUTPUTS = {
    "checkpoint": ("concat", "image", "text"),
    "sentence": ("text",),
    "image": ("image",),
    "clip": ("image", "text"),
}
POOLINGS = ("mean", "cls", "pooler")  # lib.models.sentence.POOLINGS, not imported: the optimiser inlines no model code
NAME = {"type": "str", "min_length": 1}
INTEGER = {"type": "int", "low": 1}
MODEL = {
    "type": "mapping",
    "keys": {"kind": {"type": "choice", "of": sorted(OUTPUTS)}, "source": NAME},
    "select": {
        "kind": {
            "checkpoint": {"file": NAME},
            "sentence": {
                "pooling": {"type": "choice", "of": list(POOLINGS), "optional": True},
                "prefix": {"type": "str", "optional": True, "expected": "a string (the text before every title)"},
            },
            "image": {"file": NAME, "backbone": NAME, "image_size": INTEGER},
            "clip": {},
        }
    },
}
EMBEDDINGS = {
    "type": "mapping",
    "keys": {
        "members": {
            "type": "list",
            "non_empty": True,
            "items": {
                "type": "mapping",
                "keys": {"model": NAME, "output": NAME, "weight": {"type": "number", "low": 1e-9}},
            },
        },
        "blend": {
            "type": "mapping",
            "null": True,
            "keys": {
                "kind": {"type": "choice", "of": ["inb", "qe"]},
                "k": INTEGER,
                "alpha": {"type": "number", "low": 0.0},
                "stages": INTEGER,
            },
        },
    },
}
TFIDF = {
    "type": "mapping",
    "keys": {"tfidf": {"type": "mapping", "keys": {"analyzer": {"type": "choice", "of": list(ANALYZERS)}}}},
}
RULE = {
    "type": "mapping",
    "keys": {
        "threshold": {"type": "number", "low": -1.0, "high": NO_MATCH},
        "min2": {"type": "number", "low": -1.0, "high": 1.0, "null": True, "optional": True},
    },
}
FLAG = {"type": "bool"}
SCHEMA = {
    "type": "mapping",
    "keys": {
        "models": {"type": "mapping", "values": MODEL},  # none where TF-IDF alone is the plan
        "components": {"type": "mapping", "values": {"type": "either", "of": [EMBEDDINGS, TFIDF]}},
        "matching": {
            "type": "mapping",
            "keys": {
                "components": {"type": "mapping", "values": RULE},
                "groups": {"type": "list", "items": {"type": "choice", "of": ["title", "phash"]}},
                "unit_filter": FLAG,
                "mutual": FLAG,
            },
        },
        "cv": {
            "type": "mapping",
            "keys": {"rows": INTEGER, "f1": {"type": "mapping", "values": {"type": "number", "low": 0.0, "high": 1.0}}},
        },
        "pair_stage": {
            "type": "mapping",
            "optional": True,
            "keys": {
                "file": {"type": "str", "pattern": "[^/]+", "expected": "the name of a file next to the plan"},
                "features": {"type": "list", "items": {"type": "str"}, "expected": "a list of feature names"},
                "graph": graph.SCHEMA,
            },
        },
    },
}


def check_members(components: dict, models: dict, source: str) -> None:
    """Each member of an embedding component is an output of a model of the file."""
    for name, component in components.items():
        for number, member in enumerate(component.get("members", [])):
            where = ("components", name, "members", number)
            if member["model"] not in models:
                raise schema.error(
                    source, (*where, "model"), f'{member["model"]!r} is not a model of "models" ({sorted(models)})'
                )
            outputs = OUTPUTS[models[member["model"]]["kind"]]
            if member["output"] not in outputs:
                raise schema.error(
                    source, (*where, "output"), f"{member['output']!r} is not an output of that model ({list(outputs)})"
                )


def check_pair_stage(stage: dict, components: dict, models: dict, source: str) -> None:
    """The second stage takes the features of every component's pairs and of every clip model the components use."""
    features = stage["features"]
    for name in components:
        if not set(component_feature_names(name)) <= set(features):
            raise schema.error(
                source, ("pair_stage", "features"), f"component {name!r} has no features there; the stage takes all"
            )
    used = {member["model"] for component in components.values() for member in component.get("members", [])}
    for name in sorted(used):
        feature = image_text_feature_name(name)
        if models[name]["kind"] == "clip" and feature not in features:
            raise schema.error(
                source, ("pair_stage", "features"), f"clip model {name!r} has no {feature!r} there; the stage takes it"
            )


def validate_tuned_config(config: dict, source: str) -> None:
    """Raise ValueError naming `source` and the key path of the first problem of a tuned inference config."""
    schema.check(config, SCHEMA, source)
    models, components, rules = config["models"], config["components"], config["matching"]["components"]
    check_members(components, models, source)
    if not rules:
        raise schema.error(source, ("matching", "components"), "no component: the union needs at least one")
    for name in rules:
        if name not in components:
            raise schema.error(
                source,
                ("matching", "components", name),
                f'{name!r} is not a component of "components" ({sorted(components)})',
            )
    if "pair_stage" in config:
        check_pair_stage(config["pair_stage"], components, models, source)


def read_tuned_config(path) -> dict:
    """The validated config of an inference_config.json; ValueError naming the file and the key otherwise."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no tuned plan there; attach the output of the optimize-ensemble kernel (`make optimize` locally)"
        )
    try:
        config = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(
            f"{path.name}: not valid JSON ({error}); write it again with the optimize-ensemble kernel"
        ) from error
    validate_tuned_config(config, path.name)
    return config


# title signals for a kernel without trained models; one start of the search (lib.matching.thresholds.search)
TITLE_PLAN = {
    "models": {"minilm": {"kind": "sentence", "source": "all-minilm-l6-v2"}},
    "components": {
        "tfidf": {"tfidf": {"analyzer": "word"}},
        "char": {"tfidf": {"analyzer": "char_wb"}},
        "code": {"tfidf": {"analyzer": "code"}},
        "text": {
            "members": [{"model": "minilm", "output": "text", "weight": 1.0}],
            "blend": {"kind": "inb", "k": 3, "alpha": 1.0, "stages": 1},
        },
    },
    "matching": {
        "components": {
            "tfidf": {"threshold": 0.7, "min2": 0.5},
            "char": {"threshold": 0.8},
            "code": {"threshold": 0.9},
            "text": {"threshold": 0.9, "min2": 0.8},
        },
        "groups": ["title"],
        "unit_filter": True,
        "mutual": False,
    },
}
