"""Model configurations: plain dicts (from YAML or code), checked key by key, completed with the defaults.

`validate_config` names every unknown key, missing key and wrongly typed value, with where it is. A section's options
are the arguments of the class or function it configures, with their defaults:

    name          the registered model (lib.models.registry): "image", "text" or "joint" (both, and a fusion)
    num_classes   the classes of every head; required when there are heads
    image         lib.models.image.ImageEncoder: backbone (a timm name, required), weights (a local timm state dict
                  file, default None: random), pool ("gem" | "avg" | "avgmax"), gem_p, dropout, embedding (projection
                  width, None: none), batchnorm
    text          lib.models.text.TextEncoder: model_dir (a local transformers folder, required), pool ("cls" | "mean" |
                  "mean_last_n" | "cls_last_n" | "cls_weighted"), last_n, max_length, dropout, embedding, batchnorm
    fusion        joint models; kind: "concat" (default; lib.models.fusion.ConcatFusion: linear_out, batchnorm) or
                  "transformer" (TransformerFusion: linear_out, batchnorm, width, layers, attention_heads)
    heads         {output: head} for outputs "concat" (joint models), "image", "text". A head: kind
                  (lib.models.heads.HEADS: "arcface": scale, margin (radians), easy_margin, subcenters | "cosface":
                  scale, margin | "adacos" | "curricularface": scale, margin), loss ("ce": smoothing | "focal": gamma;
                  lib.models.losses), weight (1.0), margin_end (None; else the margin ramps linearly from margin to
                  margin_end at the last epoch)
    triplet       lib.models.losses.batch_hard_triplet_loss on one output: output (required), margin, weight (1.0)
    contrastive   lib.models.losses.info_nce_loss between the image and text embeddings (joint models):
                  temperature, weight

For example {"name": "joint", "num_classes": 11014, "image": {"backbone": "efficientnet_b3", "weights": path},
"text": {"model_dir": folder, "pool": "mean_last_n", "embedding": 768}, "fusion": {"kind": "transformer"},
"heads": {"concat": {"kind": "arcface", "margin": 0.2, "margin_end": 0.8}, "image": {"kind": "cosface"}}}.
"""

import inspect
import types
from typing import Literal, Union, get_args, get_origin

from lib.models.fusion import ConcatFusion, FusionKind, TransformerFusion
from lib.models.heads import HEADS, HeadKind
from lib.models.image import ImageEncoder
from lib.models.losses import LOSSES, LossKind, batch_hard_triplet_loss, info_nce_loss
from lib.models.text import TextEncoder

REQUIRED = inspect.Parameter.empty
ENCODERS = {"image": ImageEncoder, "text": TextEncoder}
FUSIONS = {"concat": ConcatFusion, "transformer": TransformerFusion}
TOP = {
    "name": (str, REQUIRED),
    "num_classes": (int | None, None),
    "image": (dict | None, None),
    "text": (dict | None, None),
    "fusion": (dict | None, None),
    "heads": (dict, {}),
    "triplet": (dict | None, None),
    "contrastive": (dict | None, None),
}
HEAD = {
    "kind": (HeadKind, REQUIRED),
    "loss": (LossKind, "ce"),
    "weight": (float, 1.0),
    "margin_end": (float | None, None),
}
FUSION = {"kind": (FusionKind, "concat")}


def options(target, skip: tuple[str, ...]) -> dict[str, tuple]:
    """(annotation, default) of each argument of a class or function, but those in `skip`."""
    parameters = inspect.signature(target).parameters.values()
    return {p.name: (p.annotation, p.default) for p in parameters if p.name not in skip}


def arguments(target, section: dict) -> dict:
    """The entries of a validated section that `target` takes as arguments."""
    return {key: value for key, value in section.items() if key in inspect.signature(target).parameters}


def accepts(annotation, value) -> bool:
    """Whether `value` fits the annotation (an int fits float; Literal choices; unions)."""
    if get_origin(annotation) is Literal:
        return isinstance(value, str) and value in get_args(annotation)
    if isinstance(annotation, types.UnionType) or get_origin(annotation) is Union:
        return any(accepts(option, value) for option in get_args(annotation))
    if annotation is type(None) or value is None:
        return annotation is type(None) and value is None
    if annotation is bool or isinstance(value, bool):
        return annotation is bool and isinstance(value, bool)
    return isinstance(value, (int, float) if annotation is float else annotation)


def described(annotation) -> str:
    """The annotation in words, for error messages."""
    if get_origin(annotation) is Literal:
        return "one of " + ", ".join(repr(choice) for choice in get_args(annotation))
    if isinstance(annotation, types.UnionType) or get_origin(annotation) is Union:
        return " or ".join(described(option) for option in get_args(annotation))
    return "None" if annotation is type(None) else annotation.__name__


def mapping(section, where: str) -> dict:
    """`section` when it is a dict, else an error."""
    if not isinstance(section, dict):
        raise ValueError(f"model config {where}: expected a mapping of options, got {section!r}")
    return section


def checked(section, schema: dict[str, tuple], where: str) -> dict:
    """`section` completed with the schema's defaults, or an error naming the key, the problem and the fix."""
    unknown = sorted(set(mapping(section, where)) - set(schema))
    if unknown:
        raise ValueError(f"model config {where}: unknown key(s) {unknown}; the keys here are {sorted(schema)}")
    complete = {}
    for key, (annotation, default) in schema.items():
        if key not in section and default is REQUIRED:
            raise ValueError(f"model config {where}: {key!r} is required ({described(annotation)})")
        if key in section and not accepts(annotation, section[key]):
            raise ValueError(f"model config {where}.{key}: {section[key]!r} is not {described(annotation)}")
        complete[key] = section.get(key, default)
    return complete


def checked_head(head, where: str) -> dict:
    """A head's options, checked against its kind's and its loss's arguments."""
    fixed = checked({key: value for key, value in mapping(head, where).items() if key in HEAD}, HEAD, where)
    schema = HEAD | options(HEADS[fixed["kind"]], ("in_features", "num_classes"))
    schema |= options(LOSSES[fixed["loss"]], ("logits", "labels"))
    complete = checked(head, schema, where)
    if complete["margin_end"] is not None and "margin" not in schema:
        raise ValueError(f"model config {where}.margin_end: a {fixed['kind']!r} head has no margin; drop margin_end")
    return complete


def checked_fusion(fusion) -> dict:
    """The fusion's options, checked against its kind's arguments."""
    fixed = checked({key: value for key, value in mapping(fusion, "fusion").items() if key in FUSION}, FUSION, "fusion")
    return checked(fusion, FUSION | options(FUSIONS[fixed["kind"]], ("in_features", "token_widths")), "fusion")


def validate_config(config: dict, branches: tuple[str, ...]) -> dict:
    """The complete config of a model with these branches ("image", "text"), or an error naming what is wrong."""
    top = checked(config, TOP, "(top level)")
    name, joint = top["name"], len(branches) == 2
    complete = {"name": name, "num_classes": top["num_classes"]}
    for branch, encoder in ENCODERS.items():
        if branch in branches and top[branch] is None:
            raise ValueError(f"model config: the {name!r} model needs an {branch!r} section")
        if branch not in branches and top[branch] is not None:
            raise ValueError(f"model config: the {name!r} model has no {branch} branch; drop the {branch!r} section")
        if branch in branches:
            complete[branch] = checked(top[branch], options(encoder, ("pretrained",)), branch)
    if joint:
        complete["fusion"] = checked_fusion(top["fusion"] or {})
    elif top["fusion"] is not None:
        raise ValueError(f"model config: the {name!r} model has one branch, so no fusion; drop 'fusion'")
    outputs = ("concat", *branches) if joint else branches
    complete["heads"] = {}
    for output, head in top["heads"].items():
        if output not in outputs:
            raise ValueError(
                f"model config heads.{output}: the {name!r} model's outputs are {list(outputs)}; use one of them"
            )
        complete["heads"][output] = checked_head(head, f"heads.{output}")
    if complete["heads"] and top["num_classes"] is None:
        raise ValueError("model config: 'num_classes' is required with heads")
    if top["triplet"] is not None:
        schema = {"output": (Literal[outputs], REQUIRED), "weight": (float, 1.0)}
        complete["triplet"] = checked(
            top["triplet"], schema | options(batch_hard_triplet_loss, ("embeddings", "labels")), "triplet"
        )
    if top["contrastive"] is not None:
        if not joint:
            raise ValueError(f"model config contrastive: the {name!r} model has one branch; drop 'contrastive'")
        schema = {"weight": (float, 1.0)} | options(info_nce_loss, ("image", "text", "labels"))
        complete["contrastive"] = checked(top["contrastive"], schema, "contrastive")
    return complete
