"""Ensembles of embedding sets: one combined embedding whose dot products are weighted means of cosine similarities.

`combine` re-normalises each member, scales it by sqrt(w_i / sum w) and concatenates: the dot product of two combined
rows is sum_i (w_i / sum w) cos_i, the weighted mean of the members' cosine similarities, and each row has norm 1.
With equal weights it is the plain concatenation of normalised embeddings, so "concatenation" and "averaged
similarity" are one operation and only the weights need searching (lib.matching.ensemble).
"""

import numpy as np


def normalised(x: np.ndarray) -> np.ndarray:
    """Rows of `x` as float32 with norm 1 (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def combine(embeddings: list[np.ndarray], weights: list[float]) -> np.ndarray:
    """Concatenation of sqrt(w_i / sum w) * x_i over the L2-normalised members x_i (float32, rows of norm 1)."""
    if len(embeddings) != len(weights) or not embeddings:
        raise ValueError(f"combine: {len(embeddings)} embedding sets for {len(weights)} weights; give one weight each")
    if min(weights) <= 0:
        raise ValueError(f"combine: weights {list(weights)} must all be positive; leave a member out instead")
    if len({len(x) for x in embeddings}) != 1:
        raise ValueError(
            f"combine: members have {[len(x) for x in embeddings]} rows; they must embed the same postings"
        )
    total = float(sum(weights))
    return np.concatenate(
        [np.sqrt(w / total, dtype=np.float32) * normalised(x) for x, w in zip(embeddings, weights)], 1
    )
