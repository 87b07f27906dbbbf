"""The graph steps searched on CV: the config of lib.second_stage.graph tuned step by step.

In order: the threshold, mutual edges, tiered merging, agglomeration, splitting oversized clusters, at least one
match; each is kept only where it gains lib.matching.ensemble.MIN_GAIN over the best so far. No cluster exceeds
MAX_MATCHES, so a clustering's F1 follows from counts per posting (`cluster_counts`).
"""

import numpy as np

from lib.data.submission import MAX_MATCHES
from lib.matching.ensemble import MIN_GAIN
from lib.matching.pairs import Candidates, pair_truth, rows_f1, selection_f1
from lib.matching.thresholds import ascend, f1_curve
from lib.second_stage.graph import (
    TIERS,
    agglomerative,
    at_least_one,
    at_least_one_pair,
    capped,
    components,
    cut,
    edge_scores,
    splits,
    tiered,
    undirected,
)

TIERED_START = (0.8, 0.7, 0.3)
SCORE_GRID = np.round(np.arange(0.01, 1.0, 0.01), 2)  # pair probabilities: with ~50 candidates a posting and few true,
# the best cut of a classifier can lie below the similarity grid's 0.05
TIERED_GRID = SCORE_GRID[4::5]  # 0.05, 0.10, ..., 0.95: each tiered clustering is a pass over the edges in Python
SPLIT_SIZES = (6, 10, 15, 20, 30, MAX_MATCHES)


def target_sizes(labels: np.ndarray) -> np.ndarray:
    """The mean cluster sizes over postings the search tries: 1.5 by 0.1 up to 1.5 times the labels' own mean group
    size over postings, and at least to 5 (Shopee's train: 2.8; a sample's groups can be far larger)."""
    _, inverse, sizes = np.unique(labels, return_inverse=True, return_counts=True)
    return np.round(np.arange(1.5, max(5.0, 1.5 * sizes[inverse].mean()) + 0.01, 0.1), 1)


def threshold_curve(c: Candidates, edge: np.ndarray, truth: tuple, expected_false=None) -> np.ndarray:
    """CV F1 of the base at each threshold of SCORE_GRID: f1_curve, or selection_f1 per threshold under
    `expected_false`."""
    limited = capped(c, edge)
    if expected_false is None:
        return f1_curve(c, limited, truth, SCORE_GRID)
    return np.array([selection_f1(c, limited >= t, truth, expected_false) for t in map(float, SCORE_GRID)])


def cluster_counts(cluster: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each posting's true and false matches when its predicted set is its cluster, and the size of its group."""
    _, group, group_sizes = np.unique(labels, return_inverse=True, return_counts=True)
    _, members, cluster_sizes = np.unique(cluster, return_inverse=True, return_counts=True)
    _, both, shared = np.unique(members * len(group_sizes) + group, return_inverse=True, return_counts=True)
    return shared[both] - 1, cluster_sizes[members] - shared[both], group_sizes[group]


def cluster_f1(cluster: np.ndarray, labels: np.ndarray, expected_false=None) -> float:
    """Mean F1 over postings of their clusters against their label groups (`expected_false` as in selection_f1)."""
    true_kept, false_kept, sizes = cluster_counts(cluster, labels)
    if expected_false is not None:
        false_kept = expected_false(false_kept)
    return float(rows_f1(true_kept, false_kept, sizes))


def tiered_search(n: int, edges: tuple, starts: list[tuple], f1_of) -> tuple[tuple, float]:
    """The best (merge, attach, pair) from each start by lib.matching.thresholds.ascend (the three pose as thresholds
    of a plan's components: each on TIERED_GRID or NO_MATCH, never) and its F1; `f1_of` scores cluster ids."""
    scores = {}

    def score(plan: dict) -> float:
        tiers = tuple(plan["components"][tier]["threshold"] for tier in TIERS)
        if tiers not in scores:
            scores[tiers] = f1_of(tiered(n, edges, *tiers))
        return scores[tiers]

    coordinates = [("threshold", tier) for tier in TIERS]
    plans = [{"components": {tier: {"threshold": v} for tier, v in zip(TIERS, start)}} for start in starts]
    found = (ascend(plan, coordinates, [], TIERED_GRID, score) for plan in plans)
    best, f1 = max(found, key=lambda result: result[1])
    return tuple(best["components"][tier]["threshold"] for tier in TIERS), f1


def best_option(values, make, f1_of) -> tuple:
    """The value whose `make(value)` scores highest by `f1_of` (the first of equal F1), its F1 and what it made."""
    best = None
    for value in values:
        made = make(value)
        f1 = f1_of(made)
        if best is None or f1 > best[1]:
            best = (value, f1, made)
    return best


def search(c: Candidates, score: np.ndarray, labels: np.ndarray, expected_false=None) -> tuple[dict, list[dict]]:
    """The config tuned on CV step by step (the threshold, mutual edges, tiered merging, agglomeration, splitting
    oversized clusters, at least one match), each kept only where it gains MIN_GAIN over the best so far, and the
    steps for the report: {"step", "f1", "kept", and its parameters}.

    The tiered ascent starts from TIERED_START and from the threshold t for all three. The agglomeration is cut at a
    target mean cluster size (`target_sizes`), not at a linkage: group sizes are the same in a larger gallery, while
    its false edges, and so the linkage a cut needs, are not. split_oversized splits the clustering kept so far, or
    else the connected components of the edges reaching t; at_least_one attaches lone postings to their partner's
    cluster, or in the base adds the pair one way (`at_least_one_pair`). Of equal F1 the first value tried wins: the
    lowest threshold, target size or floor, the largest max_size."""
    truth = pair_truth(c, labels)
    curves = [threshold_curve(c, edge_scores(c, score, mutual), truth, expected_false) for mutual in (False, True)]
    best = int(np.argmax(curves[0]))
    config = {"mutual": False, "threshold": float(SCORE_GRID[best])}
    config |= {"grouping": None, "split_oversized": None, "at_least_one": None}
    steps = [{"step": "threshold", "f1": float(curves[0][best]), "kept": True, "threshold": config["threshold"]}]
    state = {"f1": steps[0]["f1"], "cluster": None}

    def offer(step: str, f1: float, update: dict, cluster: np.ndarray | None, **parameters) -> None:
        kept = f1 >= state["f1"] + MIN_GAIN
        steps.append({"step": step, "f1": f1, "kept": kept, **parameters})
        if kept:
            config.update(update)
            state.update(f1=f1, cluster=cluster)

    mutual = int(np.argmax(curves[1]))
    threshold = float(SCORE_GRID[mutual])
    offer("mutual", float(curves[1][mutual]), {"mutual": True, "threshold": threshold}, None, threshold=threshold)
    edge, t = edge_scores(c, score, config["mutual"]), config["threshold"]

    def f1_of(cluster: np.ndarray) -> float:
        return cluster_f1(cluster, labels, expected_false)

    edges = undirected(c, edge)
    tiers, f1 = tiered_search(c.n, edges, [TIERED_START, (t, t, t)], f1_of)
    grouping = {"kind": "tiered", **dict(zip(TIERS, tiers))}
    offer("tiered", f1, {"grouping": grouping}, tiered(c.n, edges, *tiers), **dict(zip(TIERS, tiers)))

    targets = target_sizes(labels)
    merges = agglomerative(c, edge, targets[-1])
    size, f1, cluster = best_option(map(float, targets), lambda size: cut(merges, size), f1_of)
    offer("agglomerative", f1, {"grouping": {"kind": "agglomerative", "target_size": size}}, cluster, target_size=size)

    base = components(c, edge, t) if state["cluster"] is None else state["cluster"]
    split = splits(base, c, edge, t, SPLIT_SIZES)
    size, f1, cluster = best_option(split, split.get, f1_of)  # from the largest size: the least change first
    offer("split_oversized", f1, {"split_oversized": {"max_size": size}}, cluster, max_size=size)

    if state["cluster"] is None:
        selected = capped(c, edge) >= t
        floor, f1, _ = best_option(
            map(float, SCORE_GRID),
            lambda floor: at_least_one_pair(c, edge, selected, floor),
            lambda kept: selection_f1(c, kept, truth, expected_false),
        )
        cluster = None
    else:
        floor, f1, cluster = best_option(
            map(float, SCORE_GRID), lambda floor: at_least_one(c, edge, state["cluster"], floor), f1_of
        )
    offer("at_least_one", f1, {"at_least_one": {"floor": floor}}, cluster, floor=floor)
    return config, steps
