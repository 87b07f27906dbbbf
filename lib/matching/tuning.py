"""Matching tuned on CV from components' embeddings: a blend per embedding, the union of components and its rules.

`tune` is what the optimize-ensemble kernel does once neighbours are known: candidate pairs of every component plus
identical-title and identical-phash groups, each component's F1 against threshold, then the union and its rules (unit
filter, mutual filter, title and phash groups) by lib.matching.thresholds.search, which switches components and rules on
and off and returns the best plan it evaluated. A blend is kept where it gains lib.matching.ensemble.MIN_GAIN.
"""

from dataclasses import dataclass

import numpy as np

from lib.matching import pairs, thresholds
from lib.matching.ensemble import MIN_GAIN
from lib.neighbours import dense, expansion


@dataclass
class Tuning:
    """Candidate pairs, unit conflicts, each component's F1 against threshold, the tuned config and its CV F1."""

    candidates: pairs.Candidates
    conflicts: np.ndarray
    curves: dict[str, np.ndarray]
    config: dict
    f1: float


def blended(x: np.ndarray, blend: dict | None) -> np.ndarray:
    """The embedding after a blend of the inference config (lib.neighbours.expansion.blend), or as it is for None."""
    return x if blend is None else expansion.blend(x, k=blend["k"], alpha=blend["alpha"], stages=blend["stages"])


def best_blend(x: np.ndarray, blends: list[dict], labels: np.ndarray, k: int):
    """(embedding, its neighbours, blend) of `x` as it is or after the blend that scores best alone (CV F1 at the
    best threshold), a blend kept only where it gains MIN_GAIN."""
    best, best_f1 = None, -1.0
    for blend in [None, *blends]:
        vectors = blended(x, blend)
        found = dense.neighbors(vectors, k=min(k, len(x)))
        f1 = thresholds.component_curves(pairs.candidates({"x": found}, {}), ["x"], labels)["x"].max()
        if f1 >= best_f1 + (MIN_GAIN if blend else 0):
            best, best_f1 = (vectors, found, blend), f1
    return best


def best_thresholds(curves: dict[str, np.ndarray]) -> dict[str, float]:
    """Each component's best threshold alone (curves over lib.matching.thresholds.GRID), the best component first."""
    order = sorted(curves, key=lambda name: -curves[name].max())
    return {name: float(thresholds.GRID[np.argmax(curves[name])]) for name in order}


def tune(neighbours: dict, titles: list[str], phashes: list[str], labels: np.ndarray) -> Tuning:
    """The union and rules tuned on the components' `(sim, idx)` neighbours (lib.neighbours.dense) of CV postings: the
    search (lib.matching.thresholds.search) from every component at its best threshold, min2 on the best, title
    groups, unit filter."""
    c = pairs.candidates(neighbours, {"title": titles, "phash": phashes})
    conflicts = pairs.unit_conflicts(c, titles)
    curves = thresholds.component_curves(c, neighbours, labels)
    alone = best_thresholds(curves)
    first = next(iter(alone))
    union = {name: {"threshold": threshold} for name, threshold in alone.items()}
    union[first]["min2"] = float(max(alone[first] - 0.1, thresholds.GRID[0]))
    start = {"components": union, "groups": ["title"], "unit_filter": True, "mutual": False}
    return Tuning(c, conflicts, curves, *thresholds.search(c, start, labels, conflicts))
