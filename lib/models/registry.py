"""Model registry (timm's pattern): builders registered by name; `create_model` builds the one a config names."""

from collections.abc import Callable

from torch import nn

from lib import schema

MODELS: dict[str, Callable[[dict, bool], nn.Module]] = {}


def register_model(name: str):
    """Decorator registering `builder(config, load_weights) -> nn.Module` under `name`."""

    def register(builder: Callable[[dict, bool], nn.Module]) -> Callable[[dict, bool], nn.Module]:
        if name in MODELS:
            raise ValueError(f"model {name!r} is registered twice")
        MODELS[name] = builder
        return builder

    return register


def create_model(config: dict, load_weights: bool = True) -> nn.Module:
    """The model `config["name"]` names, built and sized by `config` (see lib.models.config).

    Args:
        load_weights: load the pretrained weights the config names (image.weights, text.model_dir); False builds the
            same model with random weights, to load a checkpoint into.
    """
    name = config.get("name") if isinstance(config, dict) else None
    if name not in MODELS:
        raise schema.error(
            "model config", ("name",), f"{name!r} is not a registered model; choose one of {sorted(MODELS)}"
        )
    return MODELS[name](config, load_weights)
