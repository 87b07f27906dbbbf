"""Threshold search on CV, per component and jointly for the union, and the gallery-size correction.

A fold of ~7k postings finds fewer false neighbours above a threshold than the ~70k hidden test does. The
correction (the diary's exp017) fits a normal distribution to non-matching similarities and adds, for every
posting, the expected number of extra postings above each threshold that a gallery of `target_rows` brings.
For a smaller gallery, each posting's observed false matches shrink in proportion (true matches stay: a
posting's group is always in its own gallery).
"""

import copy
import math

import numpy as np

from lib.matching import Candidates, above, pair_f1, predict

GRID = np.round(np.arange(0.05, 1.0, 0.01), 2)


def f1_curve(c: Candidates, name: str, labels: np.ndarray, grid: np.ndarray = GRID) -> np.ndarray:
    """CV F1 of one component alone at each threshold of the grid."""
    return np.array([pair_f1(c, above(c, name, t), labels) for t in grid])


def search(
    c: Candidates, config: dict, labels: np.ndarray, conflicts=None, grid: np.ndarray = GRID, rounds: int = 3
) -> tuple[dict, float]:
    """Coordinate ascent over every component's threshold (and min2 threshold where set), maximising CV F1."""
    best = copy.deepcopy(config)
    best_f1 = pair_f1(c, predict(c, best, conflicts), labels)
    for _ in range(rounds):
        improved = False
        for name, rule in best["components"].items():
            for key in [k for k in ("threshold", "min2") if rule.get(k) is not None]:
                for value in grid:
                    trial = copy.deepcopy(best)
                    trial["components"][name][key] = float(value)
                    f1 = pair_f1(c, predict(c, trial, conflicts), labels)
                    if f1 > best_f1 + 1e-12:
                        best, best_f1, improved = trial, f1, True
        if not improved:
            break
    return best, best_f1


def random_pair_similarities(x, labels: np.ndarray, pairs: int = 20000, seed: int = 0) -> np.ndarray:
    """Similarities of random pairs of postings from different label groups (dense rows or a sparse matrix)."""
    rng = np.random.default_rng(seed)
    first, second = rng.integers(0, len(labels), size=(2, pairs))
    keep = labels[first] != labels[second]
    first, second = first[keep], second[keep]
    if hasattr(x, "multiply"):
        return np.asarray(x[first].multiply(x[second]).sum(axis=1)).ravel()
    return np.einsum("ij,ij->i", x[first], x[second])


def exceedance(negatives: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """P(similarity >= t) of a non-matching pair under a normal fit, for each threshold."""
    mean, std = float(np.mean(negatives)), max(float(np.std(negatives)), 1e-6)
    return np.array([0.5 * math.erfc((t - mean) / (std * math.sqrt(2))) for t in grid])


def gallery_curve(
    c: Candidates,
    name: str,
    labels: np.ndarray,
    negatives: np.ndarray,
    target_rows: int,
    grid: np.ndarray = GRID,
) -> np.ndarray:
    """Expected CV F1 of one component at each threshold had each posting a gallery of `target_rows` postings."""
    true_pair = labels[c.rows] == labels[c.cols]
    _, inverse, sizes = np.unique(labels, return_inverse=True, return_counts=True)
    extra = max(target_rows - c.n, 0) * exceedance(negatives, grid)
    shrink = min((target_rows - 1) / max(c.n - 1, 1), 1.0)
    curve = []
    for t, added in zip(grid, extra):
        kept = above(c, name, t)
        hits = np.bincount(c.rows[kept & true_pair], minlength=c.n) + 1
        false = np.bincount(c.rows[kept & ~true_pair], minlength=c.n)
        curve.append(float(np.mean(2 * hits / (hits + false * shrink + added + sizes[inverse]))))
    return np.array(curve)


def corrected_thresholds(
    c: Candidates, config: dict, labels: np.ndarray, negatives: dict[str, np.ndarray], target_rows: int
) -> dict:
    """The config with each component's thresholds shifted by how far its best threshold moves for the gallery."""
    corrected = copy.deepcopy(config)
    for name, rule in corrected["components"].items():
        raw = GRID[np.argmax(f1_curve(c, name, labels))]
        moved = GRID[np.argmax(gallery_curve(c, name, labels, negatives[name], target_rows))]
        for key in [k for k in ("threshold", "min2") if rule.get(k) is not None]:
            rule[key] = round(float(np.clip(rule[key] + moved - raw, GRID[0], GRID[-1])), 2)
    return corrected


def ablation(c: Candidates, config: dict, labels: np.ndarray, conflicts=None) -> dict[str, float]:
    """CV F1 of the configuration and of each one-rule change to it, at the same thresholds."""
    variants = {"tuned": config}
    for name in config["components"]:
        variants[f"only {name}"] = {**config, "components": {name: config["components"][name]}}
        if config["components"][name].get("min2") is not None:
            without = copy.deepcopy(config)
            without["components"][name]["min2"] = None
            variants[f"without min2 on {name}"] = without
    for flag in ["unit_filter", "mutual"] if conflicts is not None else ["mutual"]:
        variants[f"{'without' if config.get(flag) else 'with'} {flag}"] = {**config, flag: not config.get(flag)}
    for group in [name for name in c.similarity if name not in c.nearest]:
        groups = config.get("groups", [])
        changed = [g for g in groups if g != group] if group in groups else groups + [group]
        variants[f"{'without' if group in groups else 'with'} {group} groups"] = {**config, "groups": changed}
    return {name: pair_f1(c, predict(c, variant, conflicts), labels) for name, variant in variants.items()}
