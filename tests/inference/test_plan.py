"""lib.inference.plan: the file the optimize-ensemble kernel writes and the inference kernel reads."""

import copy
import json
import re

import pytest

from lib.inference import plan
from lib.inference.plan import read_tuned_config, validate_tuned_config
from lib.matching.pairs import NO_MATCH
from lib.models import sentence
from lib.second_stage.pair_features import component_feature_names
from lib.second_stage.title_pairs import TITLE_FEATURES

MATCHING = {
    "components": {"concat": {"threshold": 0.6, "min2": 0.5}, "tfidf": {"threshold": 0.7}},
    "groups": ["title"],
    "unit_filter": True,
    "mutual": False,
}
CONFIG = {
    "models": {
        "shopee-train-demo": {"kind": "checkpoint", "source": "shopee-train-demo", "file": "model.pt"},
        "shopee-train-demo2": {"kind": "checkpoint", "source": "shopee-train-demo2", "file": "model.pt"},
        "minilm": {"kind": "sentence", "source": "all-minilm-l6-v2"},
    },
    "components": {
        "concat": {
            "members": [
                {"model": "shopee-train-demo", "output": "concat", "weight": 0.6},
                {"model": "shopee-train-demo2", "output": "concat", "weight": 0.4},
            ],
            "blend": None,
        },
        "text": {
            "members": [{"model": "minilm", "output": "text", "weight": 1.0}],
            "blend": {"kind": "inb", "k": 3, "alpha": 1.0, "stages": 1},
        },
        "tfidf": {"tfidf": {"analyzer": "word"}},
    },
    "matching": MATCHING,
    "cv": {"rows": 414, "f1": {"concat": 0.9, "union": 0.93}},
}


def changed(path: list, value, base: dict = CONFIG) -> dict:
    """`base` with the value at a key path replaced (a None value deletes the key)."""
    config = copy.deepcopy(base)
    parent = config
    for key in path[:-1]:
        parent = parent[key]
    if value is None:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return config


def test_the_documented_shape_reads_back(tmp_path):
    path = tmp_path / "inference_config.json"
    path.write_text(json.dumps(CONFIG))
    assert read_tuned_config(path) == CONFIG


def test_a_component_that_keeps_no_pair_and_a_plan_of_tfidf_alone_validate():
    validate_tuned_config(changed(["matching", "components", "tfidf", "threshold"], NO_MATCH), "no match")
    tfidf = {"components": {"tfidf": {"threshold": NO_MATCH}}, "groups": [], "unit_filter": False, "mutual": False}
    plan = {**CONFIG, "models": {}, "components": {"tfidf": CONFIG["components"]["tfidf"]}, "matching": tfidf}
    validate_tuned_config(plan, "every posting alone")


@pytest.mark.parametrize("analyzer", ["word", "char_wb", "code"])
def test_every_tfidf_analyzer_validates(analyzer):
    validate_tuned_config(changed(["components", "tfidf", "tfidf", "analyzer"], analyzer), analyzer)


@pytest.mark.parametrize(
    "path, value, message",
    [
        (
            ["components", "concat", "members", 1, "model"],
            "x",
            "components.concat.members.1.model: 'x' is not a model of \"models\"",
        ),
        (["components", "text", "members", 0, "output"], "image", "components.text.members.0.output: 'image' is not"),
        (
            ["components", "concat", "members", 0, "weight"],
            0,
            "components.concat.members.0.weight: 0 is not a number >= 1e-09",
        ),
        (
            ["components", "concat", "blend"],
            {"kind": "dba", "k": 3, "alpha": 1, "stages": 1},
            "components.concat.blend.kind: 'dba'",
        ),
        (
            ["components", "concat", "blend"],
            {"kind": "qe", "k": 0, "alpha": 1, "stages": 1},
            "components.concat.blend.k: 0 is not an",
        ),
        (["components", "tfidf", "tfidf", "analyzer"], "char", "components.tfidf.tfidf.analyzer: 'char' is not"),
        (["models", "minilm", "kind"], "onnx", "models.minilm.kind: 'onnx' is not one of"),
        (
            ["models", "shopee-train-demo", "file"],
            None,
            "models.shopee-train-demo.file: missing; expected a non-empty string",
        ),
        (["matching", "components", "image"], {"threshold": 0.5}, "matching.components.image: 'image' is not a comp"),
        (["matching", "components", "tfidf", "threshold"], 1.5, "matching.components.tfidf.threshold: 1.5 is not"),
        (["matching", "groups"], ["colour"], "matching.groups.0: 'colour' is not one of ['title', 'phash']"),
        (["matching", "mutual"], "no", "matching.mutual: 'no' is not true or false"),
        # thresholds corrected for a gallery are the inference kernel's to measure, for its own test
        (
            ["gallery_corrected"],
            {"rows": 7, "matching": MATCHING},
            "gallery_corrected: unknown key; the keys here are ['components', 'cv', 'matching'",
        ),
        (["cv", "f1", "union"], "high", "cv.f1.union: 'high' is not a number"),
        (["thresholds"], {}, "thresholds: unknown key; the keys here are ['components'"),
    ],
)
def test_a_wrong_key_is_named_with_its_path(path, value, message):
    with pytest.raises(ValueError, match="^inference_config.json: " + re.escape(message)):
        validate_tuned_config(changed(path, value), "inference_config.json")


def test_read_names_the_file_of_invalid_json(tmp_path):
    path = tmp_path / "inference_config.json"
    path.write_text("{")
    with pytest.raises(ValueError, match="^inference_config.json: not valid JSON"):
        read_tuned_config(path)
    path.write_text(json.dumps(changed(["cv"], None)))
    with pytest.raises(ValueError, match=r"^inference_config.json: cv: missing; expected a mapping"):
        read_tuned_config(path)


def test_read_names_a_missing_plan_and_where_it_comes_from(tmp_path):
    with pytest.raises(FileNotFoundError, match="inference_config.json: no tuned plan there; attach the output of"):
        read_tuned_config(tmp_path / "inference_config.json")


PAIR_STAGE = {
    "file": "pair_model.txt",
    "features": [f for name in CONFIG["components"] for f in component_feature_names(name)] + list(TITLE_FEATURES),
    "graph": {"mutual": False, "threshold": 0.5, "grouping": None, "split_oversized": None, "at_least_one": None},
}


def test_a_plan_with_a_pair_stage_validates():
    validate_tuned_config({**CONFIG, "pair_stage": PAIR_STAGE}, "inference_config.json")


@pytest.mark.parametrize(
    "change, message",
    [
        ({"file": "../model.txt"}, "pair_stage.file: '../model.txt' is not the name of a file next to the plan"),
        ({"features": PAIR_STAGE["features"][15:]}, "pair_stage.features: component 'concat' has no features there"),
        (
            {"graph": {**PAIR_STAGE["graph"], "threshold": 2}},
            "pair_stage.graph.threshold: 2 is not a number in [0.0, 1.0]",
        ),
        ({"model": "x"}, "pair_stage.model: unknown key; the keys here are ['features', 'file', 'graph']"),
    ],
)
def test_a_wrong_pair_stage_is_named_with_its_key(change, message):
    with pytest.raises(ValueError, match="inference_config.json: " + re.escape(message)):
        validate_tuned_config({**CONFIG, "pair_stage": {**PAIR_STAGE, **change}}, "inference_config.json")


ENCODERS = {  # frozen pretrained encoders of each kind, before any training
    **CONFIG,
    "models": {
        "e5": {"kind": "sentence", "source": "multilingual-e5-small", "pooling": "mean", "prefix": "query: "},
        "labse": {"kind": "sentence", "source": "labse", "pooling": "pooler"},
        "effnet": {
            "kind": "image",
            "source": "efficientnet-b3-ra2-in1k",
            "file": "efficientnet_b3.safetensors",
            "backbone": "efficientnet_b3.ra2_in1k",
            "image_size": 288,
        },
        "clip": {"kind": "clip", "source": "clip-vit-base-patch32"},
    },
    "components": {
        "image": {
            "members": [
                {"model": "effnet", "output": "image", "weight": 1.0},
                {"model": "clip", "output": "image", "weight": 1.0},
            ],
            "blend": None,
        },
        "text": {
            "members": [
                {"model": "e5", "output": "text", "weight": 1.0},
                {"model": "labse", "output": "text", "weight": 0.5},
                {"model": "clip", "output": "text", "weight": 0.5},
            ],
            "blend": None,
        },
        "tfidf": {"tfidf": {"analyzer": "word"}},
    },
    "matching": {**MATCHING, "components": {"image": {"threshold": 0.8}, "text": {"threshold": 0.7}}},
}


def test_a_plan_of_pretrained_encoders_of_every_kind_reads_back(tmp_path):
    assert plan.POOLINGS == sentence.POOLINGS
    path = tmp_path / "inference_config.json"
    path.write_text(json.dumps(ENCODERS))
    assert read_tuned_config(path) == ENCODERS
    validate_tuned_config(changed(["models", "labse", "pooling"], None, ENCODERS), "the default pooling")


@pytest.mark.parametrize(
    "path, value, message",
    [
        (["models", "e5", "pooling"], "max", "models.e5.pooling: 'max' is not one of ['mean', 'cls', 'pooler']"),
        (["models", "e5", "prefix"], 3, "models.e5.prefix: 3 is not a string (the text before every title)"),
        (
            ["models", "e5", "file"],
            "x.bin",
            "models.e5.file: unknown key; the keys here are ['kind', 'pooling', 'prefix', 'source']",
        ),
        (["models", "effnet", "image_size"], 0, "models.effnet.image_size: 0 is not an integer >= 1"),
        (["models", "effnet", "backbone"], None, "models.effnet.backbone: missing; expected a non-empty string"),
        (["models", "effnet", "backbone"], "", "models.effnet.backbone: '' is not a non-empty string"),
        (["models", "effnet", "pooling"], "mean", "models.effnet.pooling: unknown key"),
        (
            ["models", "clip", "prefix"],
            "a photo of ",
            "models.clip.prefix: unknown key; the keys here are ['kind', 'source']",
        ),
        (["components", "image", "members", 0, "output"], "text", "components.image.members.0.output: 'text' is"),
        (["components", "text", "members", 2, "output"], "concat", "components.text.members.2.output: 'concat'"),
    ],
)
def test_a_wrong_encoder_key_is_named_with_its_path(path, value, message):
    with pytest.raises(ValueError, match="^inference_config.json: " + re.escape(message)):
        validate_tuned_config(changed(path, value, ENCODERS), "inference_config.json")


def test_a_pair_stage_takes_the_image_title_feature_of_every_clip_model():
    features = [f for name in ENCODERS["components"] for f in component_feature_names(name)] + list(TITLE_FEATURES)
    stage = {**PAIR_STAGE, "features": features}
    with pytest.raises(ValueError, match=re.escape("pair_stage.features: clip model 'clip' has no 'clip.image_text'")):
        validate_tuned_config({**ENCODERS, "pair_stage": stage}, "inference_config.json")
    features.insert(-len(TITLE_FEATURES), "clip.image_text")
    validate_tuned_config({**ENCODERS, "pair_stage": {**stage, "features": features}}, "inference_config.json")
