"""Query expansion and iterative neighbourhood blending (INB) of embeddings."""

import numpy as np
import torch

from lib.neighbours.dense import as_tensor, neighbors


def blend(embeddings, *, k: int, alpha: float = 1.0, stages: int = 1) -> np.ndarray:
    """Each row replaced by its k nearest rows (itself included) weighted by similarity**alpha, re-normalised.

    One stage with alpha > 1 is alpha-query-expansion; several stages with alpha = 1 are INB.
    """
    x = as_tensor(embeddings, torch.device("cpu")).numpy()
    for _ in range(stages):
        sim, idx = neighbors(x, k=min(k, len(x)))
        weights = np.where(idx >= 0, np.clip(sim, 0, None), 0) ** alpha
        blended = np.zeros_like(x)
        for column in range(idx.shape[1]):
            blended += weights[:, column, None] * x[np.maximum(idx[:, column], 0)]
        x = blended / np.maximum(np.linalg.norm(blended, axis=1, keepdims=True), 1e-12)
    return x
