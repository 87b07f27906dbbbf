"""Margin heads: cosine classifiers whose scaled logits feed a classification loss (lib.models.losses) in training.

A head maps embeddings (B, in_features) and labels (B,) to logits (B, num_classes), computed in float32 with
autocast off whatever the inputs' dtype: margins need the precision. ArcFace and CurricularFace margins are angles
in radians, CosFace's a cosine offset; `head.margin` may be reassigned between steps (`margin_at` gives a linear
ramp, as the 1st place ramped 0.2 -> 0.8). Sub-center ArcFace is `ArcFace(subcenters=k)`. A head cast to another
dtype keeps its running state (AdaCos's scale, CurricularFace's t) in that dtype.
"""

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

HeadKind = Literal["arcface", "cosface", "adacos", "curricularface"]


def margin_at(epoch: float, epochs: int, start: float, end: float) -> float:
    """The margin at `epoch` (0-based, fractions allowed) of a linear ramp from `start` to `end` at epoch epochs - 1."""
    progress = min(max(epoch / (epochs - 1), 0.0), 1.0) if epochs > 1 else 1.0
    return start + (end - start) * progress


def angular_margin(cos: Tensor, margin: float, easy_margin: bool) -> Tensor:
    """cos(theta + margin) of cos(theta), where theta < pi/2 (`easy_margin`) or theta + margin < pi; beyond that
    cos(theta) itself (`easy_margin`) or cos(theta) - margin sin(margin), which keeps the logit falling with theta."""
    sin = (1 - cos * cos).clamp(min=1e-12).sqrt()
    shifted = cos * math.cos(margin) - sin * math.sin(margin)
    if easy_margin:
        return torch.where(cos > 0, shifted, cos)
    return torch.where(cos > -math.cos(margin), shifted, cos - margin * math.sin(margin))


class CosineClassifier(nn.Module):
    """Class centres (`subcenters` per class) compared with embeddings by cosine similarity."""

    def __init__(self, in_features: int, num_classes: int, subcenters: int = 1):
        super().__init__()
        self.num_classes = num_classes
        self.weight = nn.Parameter(torch.empty(num_classes * subcenters, in_features))
        nn.init.xavier_uniform_(self.weight)

    def cosine(self, embeddings: Tensor) -> Tensor:
        """Cosine (B, num_classes) of each embedding with each class (its nearest centre), float32."""
        with torch.autocast(embeddings.device.type, enabled=False):
            cos = F.linear(F.normalize(embeddings.float(), dim=1), F.normalize(self.weight.float(), dim=1))
        return cos.unflatten(1, (self.num_classes, -1)).amax(2).clamp(-1, 1)


class ArcFace(CosineClassifier):
    """ArcFace (Deng et al. 2019): s cos(theta_y + m) for the true class y, s cos(theta_j) for the others.

    Args:
        scale: s.
        margin: m, in radians.
        easy_margin: add the margin only where theta_y < pi/2 (see `angular_margin`).
        subcenters: centres per class (sub-center ArcFace when over 1); a class's cosine is its nearest centre's.
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        scale: float = 30.0,
        margin: float = 0.5,
        easy_margin: bool = False,
        subcenters: int = 1,
    ):
        super().__init__(in_features, num_classes, subcenters)
        self.scale, self.margin, self.easy_margin = scale, margin, easy_margin

    def forward(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        """Scaled logits, float32."""
        cos = self.cosine(embeddings)
        target = angular_margin(cos.gather(1, labels[:, None]), self.margin, self.easy_margin)
        return self.scale * cos.scatter(1, labels[:, None], target)


class CosFace(CosineClassifier):
    """CosFace (Wang et al. 2018): s (cos(theta_y) - m) for the true class y, s cos(theta_j) for the others.

    Args:
        scale: s.
        margin: m, subtracted from the cosine.
    """

    def __init__(self, in_features: int, num_classes: int, scale: float = 30.0, margin: float = 0.35):
        super().__init__(in_features, num_classes)
        self.scale, self.margin = scale, margin

    def forward(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        """Scaled logits, float32."""
        cos = self.cosine(embeddings)
        return self.scale * cos.scatter(1, labels[:, None], cos.gather(1, labels[:, None]) - self.margin)


class AdaCos(CosineClassifier):
    """AdaCos (Zhang et al. 2019): s cos(theta_j), no margin, the scale s adapted at each training step.

    s starts at sqrt(2) ln(C - 1); a training step first sets s = ln(B) / cos(min(pi/4, theta_med)), B the batch mean
    of sum over wrong classes j of exp(s cos theta_j) under the previous s, theta_med the median true-class angle.
    """

    def __init__(self, in_features: int, num_classes: int):
        super().__init__(in_features, num_classes)
        self.register_buffer("scale", torch.tensor(math.sqrt(2) * math.log(num_classes - 1)))

    def forward(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        """Scaled logits, float32."""
        cos = self.cosine(embeddings)
        if self.training:
            with torch.no_grad():
                wrong = torch.ones_like(cos, dtype=torch.bool).scatter(1, labels[:, None], False)
                sums = torch.where(wrong, torch.exp(self.scale * cos), 0).sum(1).mean()
                median = torch.acos(cos.gather(1, labels[:, None])).median()
                self.scale.copy_(torch.log(sums) / torch.cos(median.clamp(max=math.pi / 4)))
        return self.scale * cos


class CurricularFace(CosineClassifier):
    """CurricularFace (Huang et al. 2020): ArcFace's true-class logit; a wrong class j harder than it
    (cos theta_j > cos(theta_y + m)) gets cos theta_j (t + cos theta_j), all scaled by s.

    t, a running mean of cos theta_y (updated first at each training step with momentum 0.01, from 0), raises the
    weight of hard classes as training progresses.

    Args:
        scale: s.
        margin: m, in radians.
    """

    def __init__(self, in_features: int, num_classes: int, scale: float = 30.0, margin: float = 0.5):
        super().__init__(in_features, num_classes)
        self.scale, self.margin = scale, margin
        self.register_buffer("t", torch.zeros(()))

    def forward(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        """Scaled logits, float32."""
        cos = self.cosine(embeddings)
        target = cos.gather(1, labels[:, None])
        if self.training:
            with torch.no_grad():
                self.t.mul_(0.99).add_(0.01 * target.mean())
        sin = (1 - target * target).clamp(min=1e-12).sqrt()
        hard = cos > target * math.cos(self.margin) - sin * math.sin(self.margin)
        logits = torch.where(hard, cos * (self.t + cos), cos)
        return self.scale * logits.scatter(1, labels[:, None], angular_margin(target, self.margin, False))


HEADS: dict[str, type[CosineClassifier]] = {
    "arcface": ArcFace,
    "cosface": CosFace,
    "adacos": AdaCos,
    "curricularface": CurricularFace,
}
