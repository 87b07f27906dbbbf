"""Ensembles of embedding sets: one combined embedding whose dot products are weighted means of cosine similarities.

`combine` re-normalises each member, scales it by sqrt(w_i / sum w) and concatenates: the dot product of two combined
rows is sum_i (w_i / sum w) cos_i, the weighted mean of the members' cosine similarities, and each row has norm 1.
With equal weights it is the plain concatenation of normalised embeddings, so "concatenation" and "averaged
similarity" are one operation and only the weights need searching.

The search (`cached_pairs`, `greedy`) scores weightings cheaply: candidate pairs are the union of every set's k
nearest neighbours, each set's similarity on them is computed once, and a weighting's similarity is a weighted sum
of these arrays, scored at every threshold in one pass (`f1_curve`). A combined embedding's own k nearest neighbours
lie within that union nearly always; the chosen combination is then scored exactly on its own neighbours (lib.tuning).
"""

from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from lib import knn, matching, thresholds

SHARES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)  # weight of an added set, as a share of the new total
MIN_GAIN = 1e-3  # the CV F1 an addition must gain: smaller gains are as likely noise of the fold as signal


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


@dataclass
class Pairs:
    """Candidate pairs (row, col) of n postings, sorted by row, with each embedding set's cosine similarity on them."""

    rows: np.ndarray
    cols: np.ndarray
    true_pair: np.ndarray
    group_sizes: np.ndarray
    similarity: dict[str, np.ndarray]

    @property
    def n(self) -> int:
        return len(self.group_sizes)


def pair_similarities(x: np.ndarray, rows: np.ndarray, cols: np.ndarray, chunk: int = 1024) -> np.ndarray:
    """x[rows[i]] . x[cols[i]] for pairs sorted by row, from one block of rows against all rows at a time."""
    similarity = np.empty(len(rows), dtype=np.float32)
    bounds = np.searchsorted(rows, np.arange(0, len(x) + chunk, chunk))
    for block, start in enumerate(range(0, len(x), chunk)):
        low, high = bounds[block], bounds[block + 1]
        products = x[start : start + chunk] @ x.T
        similarity[low:high] = products[rows[low:high] - start, cols[low:high]]
    return similarity


def cached_pairs(embeddings: dict[str, np.ndarray], labels: np.ndarray, k: int = 50) -> Pairs:
    """The union of every embedding set's k nearest neighbours (self excluded), and each set's similarity on all of
    them: any weighted mean similarity of the sets is then a weighted sum of these arrays."""
    n = len(labels)
    normal = {name: normalised(x) for name, x in embeddings.items()}
    found = [matching.pair_keys(*knn.neighbors(x, k=min(k, n)))[0] for x in tqdm(normal.values(), desc="neighbours")]
    keys = np.unique(np.concatenate(found))
    rows, cols = keys // n, keys % n
    similarity = {name: pair_similarities(x, rows, cols) for name, x in tqdm(normal.items(), desc="similarities")}
    _, inverse, sizes = np.unique(labels, return_inverse=True, return_counts=True)
    return Pairs(rows, cols, labels[rows] == labels[cols], sizes[inverse], similarity)


def f1_curve(pairs: Pairs, similarity: np.ndarray, grid: np.ndarray = thresholds.GRID) -> np.ndarray:
    """Mean row-wise F1 at each threshold of keeping the pairs whose similarity reaches it (as pair_f1, in one pass).

    A pair reaches the thresholds grid[:b] with b = its number of grid values <= its similarity; each row's kept
    and true kept pairs per threshold are suffix sums of its counts per b.
    """
    reached = np.searchsorted(grid.astype(np.float32), similarity, side="right")
    width = len(grid) + 1
    kept, hits = (
        np.bincount(pairs.rows[mask] * width + reached[mask], minlength=pairs.n * width).reshape(pairs.n, width)
        for mask in (slice(None), pairs.true_pair)
    )
    kept, hits = (np.cumsum(counts[:, ::-1], axis=1)[:, ::-1][:, 1:] for counts in (kept, hits))
    return np.mean(2 * (hits + 1) / (kept + 1 + pairs.group_sizes[:, None]), axis=0)


def greedy(
    pairs: Pairs, names: list[str], shares: tuple = SHARES, min_gain: float = MIN_GAIN
) -> tuple[dict[str, float], list[dict]]:
    """Forward selection of embedding sets and weights: from the best set alone, add the (set, share of the total
    weight) that most raises the CV F1 at the best threshold, while it gains at least `min_gain`.

    Returns the weights (summing to 1) and each step: the set added, its share, F1 and best threshold after it.
    """
    curves = {name: f1_curve(pairs, pairs.similarity[name]) for name in names}
    first = max(names, key=lambda name: curves[name].max())
    weights, mixed, curve = {first: 1.0}, pairs.similarity[first], curves[first]
    steps = [step(first, 1.0, curve)]
    while len(weights) < len(names):
        trials = {
            (name, share): f1_curve(pairs, (1 - share) * mixed + share * pairs.similarity[name])
            for name in names
            if name not in weights
            for share in shares
        }
        (name, share), best = max(trials.items(), key=lambda item: item[1].max())
        if best.max() < curve.max() + min_gain:
            break
        weights = {member: round(weight * (1 - share), 6) for member, weight in weights.items()} | {name: share}
        mixed, curve = (1 - share) * mixed + share * pairs.similarity[name], best
        steps.append(step(name, share, curve))
    return weights, steps


def step(name: str, share: float, curve: np.ndarray) -> dict:
    """One step of the greedy selection, for the report."""
    best = int(np.argmax(curve))
    return {"added": name, "share": share, "f1": float(curve[best]), "threshold": float(thresholds.GRID[best])}
