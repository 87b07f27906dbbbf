"""The search for ensemble weights on cached pair similarities (the optimize-ensemble kernel).

`cached_pairs` and `greedy` score weightings of embedding sets (lib.neighbours.combine) cheaply: candidate pairs are
the union of every set's k nearest neighbours, each set's similarity on them is computed once, and a weighting's
similarity is a weighted sum of these arrays, scored at every threshold in one pass (lib.matching.thresholds.f1_curve).
A combined embedding's own k nearest neighbours lie within that union nearly always; the chosen combination is then
scored exactly on its own neighbours (lib.matching.tuning).
"""

import numpy as np
from tqdm import tqdm

from lib.matching import pairs
from lib.matching.pairs import Candidates, pair_similarities
from lib.matching.thresholds import GRID, f1_curve
from lib.neighbours.combine import normalised
from lib.neighbours.dense import neighbors

SHARES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)  # weight of an added set, as a share of the new total
MIN_GAIN = 1e-3  # the CV F1 an addition must gain: smaller gains are as likely noise of the fold as signal


def cached_pairs(embeddings: dict[str, np.ndarray], k: int = 50) -> Candidates:
    """The union of every embedding set's k nearest neighbours (self excluded), and each set's similarity on all of
    them: any weighted mean similarity of the sets is then a weighted sum of these arrays."""
    n = len(next(iter(embeddings.values())))
    normal = {name: normalised(x) for name, x in embeddings.items()}
    found = [pairs.pair_keys(*neighbors(x, k=min(k, n)))[0] for x in tqdm(normal.values(), desc="neighbours")]
    keys = np.unique(np.concatenate(found))
    rows, cols = keys // n, keys % n
    similarity = {name: pair_similarities(x, rows, cols) for name, x in tqdm(normal.items(), desc="similarities")}
    return Candidates(n, rows, cols, similarity, nearest={})


def greedy(
    c: Candidates, truth: tuple, names: list[str], shares: tuple = SHARES, min_gain: float = MIN_GAIN
) -> tuple[dict[str, float], list[dict]]:
    """Forward selection of embedding sets and weights: from the best set alone, add the (set, share of the total
    weight) that most raises the CV F1 at the best threshold, while it gains at least `min_gain`.

    `truth` is the pairs' lib.matching.pairs.pair_truth. Returns the weights (summing to 1) and each step: the set
    added, its share, F1 and best threshold after it.
    """
    curves = {name: f1_curve(c, c.similarity[name], truth) for name in names}
    first = max(names, key=lambda name: curves[name].max())
    weights, mixed, curve = {first: 1.0}, c.similarity[first], curves[first]
    steps = [step(first, 1.0, curve)]
    while len(weights) < len(names):
        trials = {
            (name, share): f1_curve(c, (1 - share) * mixed + share * c.similarity[name], truth)
            for name in names
            if name not in weights
            for share in shares
        }
        (name, share), best = max(trials.items(), key=lambda item: item[1].max())
        if best.max() < curve.max() + min_gain:
            break
        weights = {member: round(weight * (1 - share), 6) for member, weight in weights.items()} | {name: share}
        mixed, curve = (1 - share) * mixed + share * c.similarity[name], best
        steps.append(step(name, share, curve))
    return weights, steps


def step(name: str, share: float, curve: np.ndarray) -> dict:
    """One step of the greedy selection, for the report."""
    best = int(np.argmax(curve))
    return {"added": name, "share": share, "f1": float(curve[best]), "threshold": float(GRID[best])}
