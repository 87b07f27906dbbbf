"""Checkpoints that rebuild their model: the validated config travels with the weights; loading is strict.

A checkpoint is a `torch.save`d dict {"config": model.config, "state_dict": ..., "extra": ...}. `load_model`
rebuilds the model from the config with random weights (no image weights file is read; the text model comes from
its folder's config.json) and loads the state dict, raising with every missing, unexpected or misshapen key.
"""

import pickle
from pathlib import Path

import torch
from torch import nn

from lib.devices import default_device
from lib.models.registry import create_model

SHOWN_KEYS = 20


def listed(keys: list[str]) -> str:
    """Up to SHOWN_KEYS keys, then how many more."""
    more = f" and {len(keys) - SHOWN_KEYS} more" if len(keys) > SHOWN_KEYS else ""
    return f"{keys[:SHOWN_KEYS]}{more}"


def load_exactly(module: nn.Module, state_dict: dict, source: str, fix: str) -> None:
    """Load `state_dict` into `module`, or raise naming `source`, every missing, unexpected and misshapen key, `fix`."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    misshapen = sorted(
        f"{key} {tuple(state_dict[key].shape)} != {tuple(own[key].shape)}"
        for key in set(own) & set(state_dict)
        if state_dict[key].shape != own[key].shape
    )
    if missing or unexpected or misshapen:
        problems = [
            f"{len(found)} {what} keys {listed(found)}"
            for what, found in [
                ("missing", missing),
                ("unexpected", unexpected),
                ("misshapen (file != model)", misshapen),
            ]
            if found
        ]
        raise ValueError(f"{source} does not fit the model: {'; '.join(problems)}. {fix}")
    module.load_state_dict(state_dict)


def save_checkpoint(path: str | Path, model: nn.Module, extra: dict | None = None) -> None:
    """Write the model's config and weights, with `extra` (plain values or tensors: epoch, scores, thresholds)."""
    torch.save({"config": model.config, "state_dict": model.state_dict(), "extra": extra or {}}, path)


def read_checkpoint(path: str | Path) -> dict:
    """The checkpoint dict at `path` (config, state_dict, extra), tensors on the CPU."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"no checkpoint at {path}; attach the dataset that holds it")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as error:
        reason = str(error).strip().splitlines()[0]
        raise ValueError(f"{path}: not a readable checkpoint ({reason}); copy it again from its run") from error


def load_model(
    path: str | Path, text_model_dir: str | Path | None = None, device: torch.device | str | None = None
) -> nn.Module:
    """The model a checkpoint holds, in eval mode on `device` (default: CUDA when present, else the CPU).

    Args:
        text_model_dir: the transformers folder of the text branch where it is not the one the config names (the
            checkpoint was trained elsewhere); its config.json and tokenizer are read, never its weights.
    """
    checkpoint = read_checkpoint(path)
    config = checkpoint["config"]
    if text_model_dir is not None:
        if "text" not in config:
            raise ValueError(f"checkpoint {path}: the {config['name']!r} model has no text branch; drop text_model_dir")
        config = {**config, "text": {**config["text"], "model_dir": str(text_model_dir)}}
    model = create_model(config, load_weights=False)
    load_exactly(
        model, checkpoint["state_dict"], f"checkpoint {path}", "Load it with the lib.models it was saved with."
    )
    device = device or default_device()
    return model.to(device).eval()
