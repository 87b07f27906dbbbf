"""lib.inference.plan: the file the optimize-ensemble kernel writes and the inference kernel reads."""

import copy
import json
import re

import pytest

from lib.inference.plan import read_tuned_config, validate_tuned_config
from lib.matching.pair_features import component_feature_names
from lib.matching.pairs import NO_MATCH
from lib.matching.title_pairs import TITLE_FEATURES

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


def changed(path: list, value) -> dict:
    """CONFIG with the value at a key path replaced (a None value deletes the key)."""
    config = copy.deepcopy(CONFIG)
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
            "components.concat.members[1].model: 'x' is not a model of \"models\"",
        ),
        (["components", "text", "members", 0, "output"], "image", "components.text.members[0].output: 'image' is not"),
        (["components", "concat", "members", 0, "weight"], 0, "components.concat.members[0].weight: 0 is not a number"),
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
        (["models", "shopee-train-demo", "file"], None, "models.shopee-train-demo: missing keys ['file']"),
        (["matching", "components", "image"], {"threshold": 0.5}, "matching.components.image: 'image' is not a comp"),
        (["matching", "components", "tfidf", "threshold"], 1.5, "matching.components.tfidf.threshold: 1.5 is not"),
        (["matching", "groups"], ["colour"], "matching.groups: ['colour'] is not a list of"),
        (["matching", "mutual"], "no", "matching.mutual: 'no' is not true or false"),
        # thresholds corrected for a gallery are the inference kernel's to measure, for its own test
        (
            ["gallery_corrected"],
            {"rows": 7, "matching": MATCHING},
            "the file: missing keys [], unknown keys ['gallery_corrected']",
        ),
        (["cv", "f1", "union"], "high", "cv.f1.union: 'high' is not a number"),
        (["thresholds"], {}, "the file: missing keys [], unknown keys ['thresholds']"),
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
    with pytest.raises(ValueError, match=r"^inference_config.json: the file: missing keys \['cv'\]"):
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
        ({"graph": {**PAIR_STAGE["graph"], "threshold": 2}}, "pair_stage.graph: threshold: 2 is not"),
        ({"model": "x"}, "pair_stage: missing keys [], unknown keys ['model']"),
    ],
)
def test_a_wrong_pair_stage_is_named_with_its_key(change, message):
    with pytest.raises(ValueError, match="inference_config.json: " + re.escape(message)):
        validate_tuned_config({**CONFIG, "pair_stage": {**PAIR_STAGE, **change}}, "inference_config.json")
