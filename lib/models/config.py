"""Model configurations: plain dicts (from YAML or code), checked key by key, completed with the defaults.

`validate_config` checks one against SCHEMA (lib.schema) and then against the model's branches; every error names the
key path. A section's options are the arguments of the class or function it configures, with their defaults (their
schema nodes come from the signatures, so each default is written once). The keys, their defaults and an example:
docs/training.md, *The model config*.
"""

import inspect
import types
from typing import Literal, get_args, get_origin

from lib import schema
from lib.models.fusion import ConcatFusion, FusionKind, TransformerFusion
from lib.models.heads import HEADS, HeadKind
from lib.models.image import ImageEncoder
from lib.models.losses import LOSSES, LossKind, batch_hard_triplet_loss, info_nce_loss
from lib.models.text import TextEncoder

ENCODERS = {"image": ImageEncoder, "text": TextEncoder}
FUSIONS = {"concat": ConcatFusion, "transformer": TransformerFusion}
OUTPUTS = ("concat", "image", "text")  # a joint model's outputs; a one-branch model has its branch's alone
TYPES = {bool: "bool", int: "int", float: "number", str: "str"}


def option(annotation, default=inspect.Parameter.empty) -> dict:
    """The schema node of an argument: its annotation (a type, a Literal, either with None) and its default."""
    nullable = isinstance(annotation, types.UnionType) and type(None) in get_args(annotation)
    if nullable:
        (annotation,) = (member for member in get_args(annotation) if member is not type(None))
    node = {"type": "choice", "of": list(get_args(annotation))} if get_origin(annotation) is Literal else {}
    node = node or {"type": TYPES[annotation]}
    node |= {"null": True} if nullable else {}
    return node if default is inspect.Parameter.empty else node | {"default": default}


def options(target, skip: tuple[str, ...]) -> dict[str, dict]:
    """The schema node of each argument of a class or function, but those in `skip`."""
    parameters = inspect.signature(target).parameters.values()
    return {p.name: option(p.annotation, p.default) for p in parameters if p.name not in skip}


def arguments(target, section: dict) -> dict:
    """The entries of a validated section that `target` takes as arguments."""
    return {key: value for key, value in section.items() if key in inspect.signature(target).parameters}


def section(keys: dict) -> dict:
    """The schema node of an optional section with these keys."""
    return {"type": "mapping", "keys": keys, "optional": True}


HEAD = {
    "type": "mapping",
    "keys": {
        "kind": option(HeadKind),
        "loss": option(LossKind, "ce"),
        "weight": option(float, 1.0),
        "margin_end": option(float | None, None),
    },
    "select": {
        "kind": {kind: options(head, ("in_features", "num_classes")) for kind, head in HEADS.items()},
        "loss": {name: options(loss, ("logits", "labels")) for name, loss in LOSSES.items()},
    },
}
SCHEMA = {  # a null section is an absent one (validate_config drops them first)
    "type": "mapping",
    "keys": {
        "name": option(str),
        "num_classes": option(int | None, None),
        **{branch: section(options(encoder, ("pretrained",))) for branch, encoder in ENCODERS.items()},
        "fusion": {
            "type": "mapping",
            "keys": {"kind": option(FusionKind, "concat")},
            "select": {
                "kind": {kind: options(fusion, ("in_features", "token_widths")) for kind, fusion in FUSIONS.items()}
            },
            "default": {},
        },
        "heads": {"type": "mapping", "values": HEAD, "default": {}},
        "triplet": section(
            {"output": {"type": "choice", "of": list(OUTPUTS)}, "weight": option(float, 1.0)}
            | options(batch_hard_triplet_loss, ("embeddings", "labels"))
        ),
        "contrastive": section({"weight": option(float, 1.0)} | options(info_nce_loss, ("image", "text", "labels"))),
    },
}


def validate_config(config: dict, branches: tuple[str, ...], source: str = "model config", where: tuple = ()) -> dict:
    """The complete config of a model with these branches ("image", "text"), or an error naming `source`, the key
    (below `where`) and what is wrong."""
    given = {key: value for key, value in config.items() if value is not None} if isinstance(config, dict) else config
    complete = schema.check(given, SCHEMA, source, where)
    name, joint = complete["name"], len(branches) == 2
    for branch in ENCODERS:
        if branch in branches and branch not in complete:
            raise schema.error(source, (*where, branch), f"missing; the {name!r} model needs an {branch!r} section")
        if branch not in branches and branch in complete:
            raise schema.error(
                source, (*where, branch), f"the {name!r} model has no {branch} branch; drop the {branch!r} section"
            )
    if not joint:
        if "fusion" in given:
            raise schema.error(
                source, (*where, "fusion"), f"the {name!r} model has one branch, so no fusion; drop 'fusion'"
            )
        del complete["fusion"]
    outputs = OUTPUTS if joint else branches
    for output, head in complete["heads"].items():
        if output not in outputs:
            raise schema.error(
                source, (*where, "heads", output), f"the {name!r} model's outputs are {list(outputs)}; use one of them"
            )
        if head["margin_end"] is not None and "margin" not in head:
            raise schema.error(
                source,
                (*where, "heads", output, "margin_end"),
                f"a {head['kind']!r} head has no margin; drop margin_end",
            )
    if complete["heads"] and complete["num_classes"] is None:
        raise schema.error(source, (*where, "num_classes"), "missing; it is required with heads")
    if "triplet" in complete and complete["triplet"]["output"] not in outputs:
        output = complete["triplet"]["output"]
        raise schema.error(
            source, (*where, "triplet", "output"), f"{output!r} is not an output of the {name!r} model {list(outputs)}"
        )
    if "contrastive" in complete and not joint:
        raise schema.error(source, (*where, "contrastive"), f"the {name!r} model has one branch; drop 'contrastive'")
    return complete
