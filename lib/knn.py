"""Exact cosine nearest neighbours in chunks: memory bounded by the chunk, never an n x n matrix."""

import numpy as np


def top_k_rows(similarity: np.ndarray, k: int, threshold: float | None) -> tuple[np.ndarray, np.ndarray]:
    """The k largest entries of each row, sorted descending; slots under `threshold` or past the end are -inf / -1."""
    rows, columns = similarity.shape
    kept = min(k, columns)
    idx = (
        np.argpartition(-similarity, kept - 1, axis=1)[:, :kept]
        if kept < columns
        else np.tile(np.arange(columns), (rows, 1))
    )
    sim = np.take_along_axis(similarity, idx, axis=1)
    order = np.argsort(-sim, axis=1, kind="stable")
    sim = np.take_along_axis(sim, order, axis=1).astype(np.float32)
    idx = np.take_along_axis(idx, order, axis=1).astype(np.int64)
    out_sim = np.full((rows, k), -np.inf, dtype=np.float32)
    out_idx = np.full((rows, k), -1, dtype=np.int64)
    out_sim[:, :kept], out_idx[:, :kept] = sim, idx
    if threshold is not None:
        below = out_sim < threshold
        out_sim[below], out_idx[below] = -np.inf, -1
    return out_sim, out_idx


def as_float32(x) -> np.ndarray:
    """A float32 numpy copy of a numpy array or torch tensor (any device, float16 included)."""
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=np.float32)


def neighbors(x, y=None, *, k: int, threshold: float | None = None, chunk_size: int = 4096):
    """Cosine neighbours of L2-normalised rows of `x` in `y` (`x` itself when None): `(sim, idx)`, shape (len(x), k)."""
    x = as_float32(x)
    y = x if y is None else as_float32(y)
    chunks = [top_k_rows(x[start : start + chunk_size] @ y.T, k, threshold) for start in range(0, len(x), chunk_size)]
    if not chunks:
        return np.zeros((0, k), dtype=np.float32), np.zeros((0, k), dtype=np.int64)
    return tuple(np.concatenate(parts) for parts in zip(*chunks))
