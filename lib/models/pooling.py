"""Pooling: an image's tokens to one vector (GeM, average, max+average); a text's hidden layers to one vector."""

from typing import Literal

import torch
from torch import Tensor, nn

ImagePoolKind = Literal["gem", "avg", "avgmax"]
TextPoolKind = Literal["cls", "mean", "mean_last_n", "cls_last_n", "cls_weighted"]


class GeM(nn.Module):
    """Generalised mean over tokens, mean(x.clamp(min=eps) ** p) ** (1 / p), with a learned p; computed in float32."""

    def __init__(self, p: float, eps: float = 1e-6):
        super().__init__()
        self.p = nn.Parameter(torch.tensor(float(p)))
        self.eps = eps

    def forward(self, tokens: Tensor) -> Tensor:
        """(B, N, C) tokens to (B, C), in the tokens' dtype."""
        p = self.p.float()
        return tokens.float().clamp(min=self.eps).pow(p).mean(1).pow(1 / p).to(tokens.dtype)


class ImagePool(nn.Module):
    """Tokens (B, N, C) to (B, C): "gem" (GeM, learned p from `gem_p`), "avg" (mean), "avgmax" ((mean + max) / 2)."""

    def __init__(self, kind: ImagePoolKind, gem_p: float):
        super().__init__()
        self.kind = kind
        self.gem = GeM(gem_p) if kind == "gem" else None

    def forward(self, tokens: Tensor) -> Tensor:
        """The pooled tokens."""
        if self.gem is not None:
            return self.gem(tokens)
        mean = tokens.mean(1)
        return mean if self.kind == "avg" else (mean + tokens.amax(1)) / 2


def masked_mean(hidden: Tensor, mask: Tensor) -> Tensor:
    """Mean over the tokens (B, T, H) where `mask` (B, T) is non-zero, computed in float32, in the hidden dtype."""
    weights = mask.unsqueeze(-1).float()
    return ((hidden.float() * weights).sum(1) / weights.sum(1).clamp(min=1)).to(hidden.dtype)


class TextPool(nn.Module):
    """A text's hidden layers to one vector; layers[0] is the embedding output, as transformers returns them.

    Kinds: "cls": the last layer's first token; "mean": masked token mean of the last layer; "mean_last_n": masked
    token mean of the average of the last n layers; "cls_last_n": the first tokens of the last n layers, concatenated
    (n times the hidden width); "cls_weighted": the first tokens of every transformer layer, summed with learned
    softmax weights (equal at the start).
    """

    def __init__(self, kind: TextPoolKind, last_n: int, num_layers: int):
        super().__init__()
        self.kind, self.last_n = kind, last_n
        self.layer_logits = nn.Parameter(torch.zeros(num_layers)) if kind == "cls_weighted" else None
        self.width_factor = last_n if kind == "cls_last_n" else 1
        self.needs_layers = kind in ("mean_last_n", "cls_last_n", "cls_weighted")

    def forward(self, layers: tuple[Tensor, ...], mask: Tensor) -> Tensor:
        """Hidden layers, each (B, T, H), and the attention mask (B, T) to (B, H x width_factor)."""
        if self.kind == "cls":
            return layers[-1][:, 0]
        if self.kind == "mean":
            return masked_mean(layers[-1], mask)
        if self.kind == "mean_last_n":
            return masked_mean(torch.stack(layers[-self.last_n :]).mean(0), mask)
        if self.kind == "cls_last_n":
            return torch.cat([hidden[:, 0] for hidden in layers[-self.last_n :]], 1)
        first_tokens = torch.stack([hidden[:, 0] for hidden in layers[1:]], 1)
        weights = self.layer_logits.float().softmax(0).to(first_tokens.dtype)
        return (first_tokens * weights[:, None]).sum(1)
