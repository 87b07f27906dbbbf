"""Fusion of the image and text branches into the joint ("concat") embedding."""

from typing import Literal

import torch
from torch import Tensor, nn

from lib.models.neck import Features, Neck

FusionKind = Literal["concat", "transformer"]


class ConcatFusion(nn.Module):
    """The two branch embeddings concatenated, then a linear layer to `linear_out` features (+ BatchNorm)."""

    def __init__(self, in_features: int, linear_out: int = 2048, batchnorm: bool = True):
        super().__init__()
        self.neck = Neck(in_features, linear_out, 0.0, batchnorm)

    def forward(self, image: Features, text: Features) -> Tensor:
        """The joint embedding (B, linear_out)."""
        return self.neck(torch.cat([image.embedding, text.embedding], 1))


class TransformerFusion(nn.Module):
    """A small transformer over a learned summary token, the image tokens and the text tokens (padding masked).

    Each source's tokens are projected to `width` and marked with a learned source embedding; the summary token's
    output, layer-normalised, goes through a linear layer to `linear_out` features (+ BatchNorm).

    Args:
        token_widths: the widths of the image and the text tokens.
        width: the transformer's width (its feed-forward layers are 4 times wider; dropout 0.1).
        layers: transformer layers.
        attention_heads: attention heads per layer; they must divide `width`.
    """

    def __init__(
        self,
        token_widths: tuple[int, int],
        linear_out: int = 2048,
        batchnorm: bool = True,
        width: int = 256,
        layers: int = 1,
        attention_heads: int = 4,
    ):
        super().__init__()
        if width % attention_heads:
            raise ValueError(f"fusion.attention_heads: {attention_heads} does not divide fusion.width {width}")
        self.inputs = nn.ModuleList(nn.Linear(token_width, width) for token_width in token_widths)
        self.sources = nn.Parameter(torch.randn(len(token_widths), width) * 0.02)
        self.summary = nn.Parameter(torch.randn(width) * 0.02)
        layer = nn.TransformerEncoderLayer(width, attention_heads, 4 * width, 0.1, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.neck = Neck(width, linear_out, 0.0, batchnorm)

    def forward(self, image: Features, text: Features) -> Tensor:
        """The joint embedding (B, linear_out)."""
        sources = (image, text)
        parts = [project(f.tokens) + self.sources[i] for i, (f, project) in enumerate(zip(sources, self.inputs))]
        summary = self.summary.to(parts[0].dtype).expand(len(parts[0]), 1, -1)
        tokens = torch.cat([summary, *parts], 1)
        padding = torch.cat([torch.zeros_like(tokens[:, :1, 0], dtype=torch.bool), *map(padding_of, sources)], 1)
        return self.neck(self.norm(self.encoder(tokens, src_key_padding_mask=padding)[:, 0]))


def padding_of(features: Features) -> Tensor:
    """True on the padding tokens of a branch (B, N)."""
    if features.mask is None:
        return torch.zeros(features.tokens.shape[:2], dtype=torch.bool, device=features.tokens.device)
    return features.mask == 0
