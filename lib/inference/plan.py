"""The tuned inference config (inference_config.json) that the optimize-ensemble kernel writes and inference reads.

models              name -> {"kind": "checkpoint", "source": <slug>, "file": "model.pt"}: a training run's model,
                             outputs "concat", "image", "text" (lib.models.embed)
                             | {"kind": "sentence", "source": <slug of a transformers folder>, "pooling": "mean" |
                             "cls" | "pooler", "prefix": <text put before every title>}: a frozen sentence model,
                             output "text" (lib.models.sentence; pooling and prefix may be left out: "mean" and "",
                             the masked mean of MiniLM and paraphrase-multilingual; multilingual-e5 takes "mean" and
                             "query: ", LaBSE "pooler", as their model cards say)
                             | {"kind": "image", "source": <slug>, "file": "<architecture>.safetensors", "backbone":
                             <timm name, with its pretrained tag>, "image_size": <pixels>}: a frozen pretrained timm
                             backbone, output "image", its pooled features (lib.models.backbone)
                             | {"kind": "clip", "source": <slug of a CLIP or SigLIP folder with its processor>}:
                             outputs "image" and "text" (lib.models.image_text)
                             (`make pretrained MODEL=...` prints the entry of each kind but the checkpoint)
components          name -> {"members": [{"model", "output", "weight"}, ...], "blend": null | {kind, k, alpha,
                             stages}} (lib.neighbours.combine.combine, then lib.neighbours.expansion.blend)
                             | {"tfidf": {"analyzer": a name of lib.data.text.ANALYZERS}}
matching            a lib.matching.pairs.predict config over the component names (groups: "title", "phash"); a threshold
                    of lib.matching.pairs.NO_MATCH keeps no pair of that component
cv                  {"rows": CV postings, "f1": {name: mean F1}}
pair_stage          (optional) the second stage, which then matches instead of "matching": {"file": the pair
                    classifier's LightGBM text file next to this one, "features": its feature names (those
                    lib.second_stage.pair_features gives for the components, all of "components", and for each clip
                    model the components use its image-title similarity "<model>.image_text": the mean of
                    image_i . text_j and image_j . text_i), "graph": the graph steps (lib.second_stage.graph)}
"""

import json
from pathlib import Path

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
MODEL_KEYS = {  # each kind's keys, and those it may leave out
    "checkpoint": ({"kind", "source", "file"}, set()),
    "sentence": ({"kind", "source"}, {"pooling", "prefix"}),
    "image": ({"kind", "source", "file", "backbone", "image_size"}, set()),
    "clip": ({"kind", "source"}, set()),
}
STRING_KEYS = ("source", "file", "backbone")  # model keys that are non-empty strings
POOLINGS = ("mean", "cls", "pooler")  # lib.models.sentence.POOLINGS, not imported: the optimiser inlines no model code
BLENDS = ("inb", "qe")
GROUPS = ("title", "phash")
KEYS = {"models", "components", "matching", "cv"}


def fail(source: str, where: str, problem: str) -> None:
    """Raise the error of one key."""
    raise ValueError(f"{source}: {where}: {problem}")


def mapping(value, source: str, where: str, keys: set[str] | None = None, optional: set[str] = frozenset()) -> dict:
    """`value` checked to be a mapping with exactly `keys` (plus any of `optional`) when given."""
    if not isinstance(value, dict):
        fail(source, where, f"{value!r} is not a mapping")
    if keys is not None:
        missing, unknown = keys - set(value), set(value) - keys - optional
        if missing or unknown:
            fail(
                source,
                where,
                f"missing keys {sorted(missing)}, unknown keys {sorted(unknown)}; expected {sorted(keys)}",
            )
    return value


def number(value, source: str, where: str, low: float, high: float = float("inf")) -> None:
    """`value` checked to be a number in [low, high]."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        fail(source, where, f"{value!r} is not a number in [{low}, {high}]")


def integer(value, source: str, where: str, low: int) -> None:
    """`value` checked to be an integer of at least `low`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        fail(source, where, f"{value!r} is not an integer >= {low}")


def check_model(model, source: str, where: str) -> None:
    """One entry of "models"."""
    kind = mapping(model, source, where).get("kind")
    if kind not in OUTPUTS:
        fail(source, f"{where}.kind", f"{kind!r} is not one of {sorted(OUTPUTS)}")
    mapping(model, source, where, *MODEL_KEYS[kind])
    for key in set(STRING_KEYS) & set(model):
        if not isinstance(model[key], str) or not model[key]:
            fail(source, f"{where}.{key}", f"{model[key]!r} is not a non-empty string")
    if "pooling" in model and model["pooling"] not in POOLINGS:
        fail(source, f"{where}.pooling", f"{model['pooling']!r} is not one of {list(POOLINGS)}")
    if "prefix" in model and not isinstance(model["prefix"], str):
        fail(source, f"{where}.prefix", f"{model['prefix']!r} is not a string (the text before every title)")
    if "image_size" in model:
        integer(model["image_size"], source, f"{where}.image_size", 1)


def check_component(component, models: dict, source: str, where: str) -> None:
    """One entry of "components": embedding members (and a blend) or TF-IDF."""
    if "tfidf" in mapping(component, source, where):
        analyzer = mapping(
            mapping(component, source, where, {"tfidf"})["tfidf"], source, f"{where}.tfidf", {"analyzer"}
        )
        if analyzer["analyzer"] not in ANALYZERS:
            fail(source, f"{where}.tfidf.analyzer", f"{analyzer['analyzer']!r} is not one of {list(ANALYZERS)}")
        return
    mapping(component, source, where, {"members", "blend"})
    members = component["members"]
    if not isinstance(members, list) or not members:
        fail(source, f"{where}.members", f"{members!r} is not a non-empty list")
    for number_, member in enumerate(members):
        at = f"{where}.members[{number_}]"
        mapping(member, source, at, {"model", "output", "weight"})
        if member["model"] not in models:
            fail(source, f"{at}.model", f'{member["model"]!r} is not a model of "models" ({sorted(models)})')
        outputs = OUTPUTS[models[member["model"]]["kind"]]
        if member["output"] not in outputs:
            fail(source, f"{at}.output", f"{member['output']!r} is not an output of that model ({list(outputs)})")
        number(member["weight"], source, f"{at}.weight", 1e-9)
    if component["blend"] is not None:
        blend = mapping(component["blend"], source, f"{where}.blend", {"kind", "k", "alpha", "stages"})
        if blend["kind"] not in BLENDS:
            fail(source, f"{where}.blend.kind", f"{blend['kind']!r} is not one of {list(BLENDS)}")
        integer(blend["k"], source, f"{where}.blend.k", 1)
        number(blend["alpha"], source, f"{where}.blend.alpha", 0.0)
        integer(blend["stages"], source, f"{where}.blend.stages", 1)


def check_matching(matching, components: dict, source: str, where: str) -> None:
    """A lib.matching.pairs.predict config whose components are components of the file."""
    mapping(matching, source, where, {"components", "groups", "unit_filter", "mutual"})
    rules = mapping(matching["components"], source, f"{where}.components")
    if not rules:
        fail(source, f"{where}.components", "no component: the union needs at least one")
    for name, rule in rules.items():
        at = f"{where}.components.{name}"
        if name not in components:
            fail(source, at, f'{name!r} is not a component of "components" ({sorted(components)})')
        mapping(rule, source, at, {"threshold"}, {"min2"})
        number(rule["threshold"], source, f"{at}.threshold", -1.0, NO_MATCH)
        if rule.get("min2") is not None:
            number(rule["min2"], source, f"{at}.min2", -1.0, 1.0)
    groups = matching["groups"]
    if not isinstance(groups, list) or not set(groups) <= set(GROUPS):
        fail(source, f"{where}.groups", f"{groups!r} is not a list of {list(GROUPS)}")
    for flag in ["unit_filter", "mutual"]:
        if not isinstance(matching[flag], bool):
            fail(source, f"{where}.{flag}", f"{matching[flag]!r} is not true or false")


def check_pair_stage(stage, components: dict, models: dict, source: str) -> None:
    """The second stage: its model file's name, the features of every component's pairs and of every clip model the
    components use, the graph steps."""
    mapping(stage, source, "pair_stage", {"file", "features", "graph"})
    if not isinstance(stage["file"], str) or not stage["file"] or "/" in stage["file"]:
        fail(source, "pair_stage.file", f"{stage['file']!r} is not the name of a file next to the plan")
    features = stage["features"]
    if not isinstance(features, list) or not all(isinstance(name, str) for name in features):
        fail(source, "pair_stage.features", f"{features!r} is not a list of feature names")
    for name in components:
        if not set(component_feature_names(name)) <= set(features):
            fail(source, "pair_stage.features", f"component {name!r} has no features there; the stage takes all")
    used = {member["model"] for component in components.values() for member in component.get("members", [])}
    for name in sorted(used):
        feature = image_text_feature_name(name)
        if models[name]["kind"] == "clip" and feature not in features:
            fail(source, "pair_stage.features", f"clip model {name!r} has no {feature!r} there; the stage takes it")
    graph.validate(stage["graph"], f"{source}: pair_stage.graph")


def validate_tuned_config(config: dict, source: str) -> None:
    """Raise ValueError naming `source` and the key path of the first problem of a tuned inference config."""
    mapping(config, source, "the file", KEYS, {"pair_stage"})
    models = mapping(config["models"], source, "models")  # none where TF-IDF alone is the plan
    for name, model in models.items():
        check_model(model, source, f"models.{name}")
    components = mapping(config["components"], source, "components")
    for name, component in components.items():
        check_component(component, models, source, f"components.{name}")
    check_matching(config["matching"], components, source, "matching")
    cv = mapping(config["cv"], source, "cv", {"rows", "f1"})
    integer(cv["rows"], source, "cv.rows", 1)
    for name, score in mapping(cv["f1"], source, "cv.f1").items():
        number(score, source, f"cv.f1.{name}", 0.0, 1.0)
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
