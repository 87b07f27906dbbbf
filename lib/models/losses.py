"""Losses, each computed in float32 with autocast off: classification losses on head logits, embedding losses."""

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

LossKind = Literal["ce", "focal"]


def cross_entropy(logits: Tensor, labels: Tensor, smoothing: float = 0.0) -> Tensor:
    """Mean cross-entropy, with `smoothing` of each target's mass spread evenly over all classes."""
    return F.cross_entropy(logits.float(), labels, label_smoothing=smoothing)


def focal_loss(logits: Tensor, labels: Tensor, gamma: float = 2.0) -> Tensor:
    """Focal loss (Lin et al. 2017): the mean of -(1 - p_y)^gamma log p_y; gamma 0 is cross-entropy."""
    log_p = F.log_softmax(logits.float(), 1).gather(1, labels[:, None]).squeeze(1)
    return -((1 - log_p.exp()) ** gamma * log_p).mean()


def batch_hard_triplet_loss(embeddings: Tensor, labels: Tensor, margin: float = 0.3) -> Tensor:
    """Batch-hard triplet loss (Hermans et al. 2017) on cosine distances d = 1 - cos.

    Each anchor takes its farthest positive (same label, not itself) and its nearest negative; the loss is the mean
    of max(0, d_positive - d_negative + margin) over the anchors that have both (0 when none has).
    """
    with torch.autocast(embeddings.device.type, enabled=False):
        unit = F.normalize(embeddings.float(), dim=1)
        distance = 1 - unit @ unit.T
    same = labels[:, None] == labels[None, :]
    positive = same & ~torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    farthest_positive = distance.masked_fill(~positive, -torch.inf).amax(1)
    nearest_negative = distance.masked_fill(same, torch.inf).amin(1)
    has_both = positive.any(1) & ~same.all(1)
    losses = F.relu(farthest_positive - nearest_negative + margin)[has_both]
    return losses.mean() if len(losses) else distance.sum() * 0


def info_nce_loss(image: Tensor, text: Tensor, labels: Tensor, temperature: float = 0.07) -> Tensor:
    """Symmetric image-text InfoNCE (CLIP): each image picks its own text among the batch's texts, and each text its
    own image, by softmax over cosine / temperature; other postings of the same label are no negatives (left out)."""
    with torch.autocast(image.device.type, enabled=False):
        similarity = F.normalize(image.float(), dim=1) @ F.normalize(text.float(), dim=1).T / temperature
    own = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    similarity = similarity.masked_fill((labels[:, None] == labels[None, :]) & ~own, -torch.inf)
    targets = torch.arange(len(labels), device=labels.device)
    return (F.cross_entropy(similarity, targets) + F.cross_entropy(similarity.T, targets)) / 2


LOSSES = {"ce": cross_entropy, "focal": focal_loss}
