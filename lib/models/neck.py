"""What a branch hands on (its embedding and its tokens) and the neck that makes an embedding of pooled features."""

from typing import NamedTuple

from torch import Tensor, nn


class Features(NamedTuple):
    """A branch's embedding (B, E) and its tokens (B, N, C), with a mask (B, N) non-zero on real tokens or None."""

    embedding: Tensor
    tokens: Tensor
    mask: Tensor | None


class Neck(nn.Sequential):
    """Dropout, a linear projection to `embedding` features (none when None), then BatchNorm1d when `batchnorm`."""

    def __init__(self, in_features: int, embedding: int | None, dropout: float, batchnorm: bool):
        width = in_features if embedding is None else embedding
        layers = [nn.Dropout(dropout)]
        if embedding is not None:
            layers.append(nn.Linear(in_features, embedding))
        if batchnorm:
            layers.append(nn.BatchNorm1d(width))
        super().__init__(*layers)
        self.width = width
