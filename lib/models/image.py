"""Image branch: a timm backbone by name, weights from a local file (never a hub), pooled tokens, a neck."""

from pathlib import Path

import timm
from timm.models import load_state_dict
from torch import Tensor, nn

from lib.models.checkpoint import load_exactly
from lib.models.neck import Features, Neck
from lib.models.pooling import ImagePool, ImagePoolKind


def image_tokens(features: Tensor, channels_last: bool) -> Tensor:
    """A backbone's output as (B, N, C) tokens: feature maps (NCHW, or NHWC when `channels_last`) flattened."""
    if features.ndim == 3:
        return features
    return features.flatten(1, 2) if channels_last else features.flatten(2).transpose(1, 2)


def load_backbone_weights(backbone: nn.Module, path: str) -> None:
    """Load a timm state dict file (.pth, .bin or .safetensors) into a backbone built without its classifier."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"image.weights: no file at {path}; attach the dataset that holds the backbone weights")
    classifiers = backbone.pretrained_cfg.get("classifier") or ()
    prefixes = tuple(f"{name}." for name in ([classifiers] if isinstance(classifiers, str) else classifiers))
    state_dict = {key: value for key, value in load_state_dict(path).items() if not key.startswith(prefixes)}
    architecture = backbone.pretrained_cfg.get("architecture")
    load_exactly(backbone, state_dict, f"image.weights {path}", f"Give a state dict of timm's {architecture!r}.")


class ImageEncoder(nn.Module):
    """A timm backbone's unpooled output as tokens, pooled, then a neck (dropout, projection, BatchNorm).

    Args:
        backbone: a timm model name (timm.list_models()).
        weights: a local timm state dict file of that model; None: random weights.
        pool: "gem", "avg" or "avgmax" (see lib.models.pooling).
        gem_p: GeM's initial p (learned).
        embedding: the projection's width; None: no projection (the backbone's width).
        pretrained: load `weights`; False builds the same model with random weights (to load a checkpoint into).
    """

    def __init__(
        self,
        backbone: str,
        weights: str | None = None,
        pool: ImagePoolKind = "gem",
        gem_p: float = 3.0,
        dropout: float = 0.0,
        embedding: int | None = None,
        batchnorm: bool = False,
        pretrained: bool = True,
    ):
        super().__init__()
        if not timm.is_model(backbone):
            raise ValueError(f"image.backbone: {backbone!r} is not a timm model; see timm.list_models()")
        self.backbone = timm.create_model(backbone, pretrained=False, num_classes=0, global_pool="")
        if pretrained and weights is not None:
            load_backbone_weights(self.backbone, weights)
        self.channels_last = getattr(self.backbone, "output_fmt", "NCHW") == "NHWC"
        self.token_width = getattr(self.backbone, "head_hidden_size", self.backbone.num_features)
        self.pool = ImagePool(pool, gem_p)
        self.neck = Neck(self.token_width, embedding, dropout, batchnorm)
        self.width = self.neck.width

    def forward(self, image: Tensor) -> Features:
        """Images (B, 3, H, W), normalised as the backbone expects, to their embedding and tokens."""
        tokens = image_tokens(self.backbone(image), self.channels_last)
        return Features(self.neck(self.pool(tokens)), tokens, None)
