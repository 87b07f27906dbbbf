"""Matching tuned on CV from components' embeddings: a blend per embedding, the union of components and its rules.

`tune` is what the optimize-ensemble kernel does once neighbours are known: candidate pairs of every component plus
identical-title and identical-phash groups, each component's F1 against threshold, then greedily the union (best
component with min2 first, further components where the jointly searched thresholds gain) and the rules (unit filter,
mutual filter, title and phash groups, each kept where it gains), every gain at least lib.ensemble.MIN_GAIN.
"""

import copy
from dataclasses import dataclass

import numpy as np

from lib import expansion, knn, matching, thresholds
from lib.ensemble import MIN_GAIN

RULES = ("unit_filter", "mutual", "title", "phash")


@dataclass
class Tuning:
    """Candidate pairs, unit conflicts, each component's F1 against threshold, the tuned config and its steps."""

    candidates: matching.Candidates
    conflicts: np.ndarray
    curves: dict[str, np.ndarray]
    config: dict
    steps: list[dict]

    @property
    def f1(self) -> float:
        return self.steps[-1]["f1"]


def blended(x: np.ndarray, blend: dict | None) -> np.ndarray:
    """The embedding after a blend of the inference config (lib.expansion.blend), or as it is for None."""
    return x if blend is None else expansion.blend(x, k=blend["k"], alpha=blend["alpha"], stages=blend["stages"])


def best_blend(x: np.ndarray, blends: list[dict], labels: np.ndarray, k: int):
    """(embedding, its neighbours, blend) of `x` as it is or after the blend that scores best alone (CV F1 at the
    best threshold), a blend kept only where it gains MIN_GAIN."""
    best, best_f1 = None, -1.0
    for blend in [None, *blends]:
        vectors = blended(x, blend)
        found = knn.neighbors(vectors, k=min(k, len(x)))
        f1 = thresholds.f1_curve(matching.candidates({"x": found}, {}), "x", labels).max()
        if f1 >= best_f1 + (MIN_GAIN if blend else 0):
            best, best_f1 = (vectors, found, blend), f1
    return best


def best_thresholds(curves: dict[str, np.ndarray]) -> dict[str, float]:
    """Each component's best threshold alone (curves over lib.thresholds.GRID), the best component first."""
    order = sorted(curves, key=lambda name: -curves[name].max())
    return {name: float(thresholds.GRID[np.argmax(curves[name])]) for name in order}


def switched(config: dict, rule: str) -> tuple[str, dict]:
    """The config with one rule of RULES switched, and the change in words."""
    if rule in ("unit_filter", "mutual"):
        return f"{'without' if config[rule] else 'with'} {rule}", {**config, rule: not config[rule]}
    present = rule in config["groups"]
    groups = [group for group in config["groups"] if group != rule] if present else config["groups"] + [rule]
    return f"{'without' if present else 'with'} {rule} groups", {**config, "groups": groups}


def tune_union(
    c: matching.Candidates,
    alone: dict[str, float],
    labels: np.ndarray,
    conflicts: np.ndarray,
    min_gain: float = MIN_GAIN,
) -> tuple[dict, list[dict]]:
    """The union of components and its rules, greedily: the best component with min2, each further component (best
    first, thresholds searched jointly) and each rule change (at the same thresholds) kept where CV F1 gains at least
    `min_gain`; the thresholds searched once more at the end.

    Args:
        alone: each searched component's best threshold alone, best component first.
    Returns the lib.matching config and each step kept: the change and the CV F1 after it.
    """
    first, *others = alone
    start = {"threshold": alone[first], "min2": float(max(alone[first] - 0.1, thresholds.GRID[0]))}
    config = {"components": {first: start}, "groups": ["title"], "unit_filter": True, "mutual": False}
    config, f1 = thresholds.search(c, config, labels, conflicts)
    steps = [{"change": f"{first} (min2, title groups, unit filter)", "f1": f1}]
    for name in others:
        trial = copy.deepcopy(config)
        trial["components"][name] = {"threshold": alone[name]}
        trial, trial_f1 = thresholds.search(c, trial, labels, conflicts)
        if trial_f1 >= f1 + min_gain:
            config, f1 = trial, trial_f1
            steps.append({"change": f"+ {name}", "f1": f1})
    changed = False
    for rule in RULES:
        change, trial = switched(config, rule)
        trial_f1 = matching.pair_f1(c, matching.predict(c, trial, conflicts), labels)
        if trial_f1 >= f1 + min_gain:
            config, f1, changed = trial, trial_f1, True
            steps.append({"change": change, "f1": f1})
    if changed:
        config, f1 = thresholds.search(c, config, labels, conflicts)
        steps.append({"change": "thresholds searched again", "f1": f1})
    return config, steps


def tune(neighbours: dict, titles: list[str], phashes: list[str], labels: np.ndarray) -> Tuning:
    """The union and rules tuned on the components' `(sim, idx)` neighbours (lib.knn) of CV postings."""
    c = matching.candidates(neighbours, {"title": titles, "phash": phashes})
    conflicts = matching.unit_conflicts(c, titles)
    curves = {name: thresholds.f1_curve(c, name, labels) for name in neighbours}
    config, steps = tune_union(c, best_thresholds(curves), labels, conflicts)
    return Tuning(c, conflicts, curves, config, steps)
