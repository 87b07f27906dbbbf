"""The search for the matching plan on CV (thresholds, components and rules switched on and off), the ablation, and
the gallery-size correction.

`search` is a coordinate ascent over the plan's rules that scores each plan on every candidate pair at once; `ablation`
scores the plan with one rule changed at a time. `corrected_thresholds` predicts each posting's false matches in a
gallery `target_rows / rows` times larger from its count on the fold (shrunk toward the mean by a gamma-Poisson fit)
and tunes the thresholds again under that prediction. The method: docs/inference.md, *The gallery correction*; the
search: docs/optimiser.md, *The optimiser*.
"""

import copy
import json

import numpy as np

from lib.matching.pairs import NO_MATCH, Candidates, pair_f1, pair_truth, predict, rows_f1, selection_f1

GRID = np.round(np.arange(0.05, 1.0, 0.01), 2)
OFF = {"threshold": NO_MATCH, "min2": None}  # a component's rule that keeps no pair


def f1_curve(c: Candidates, similarity: np.ndarray, truth: tuple, grid: np.ndarray = GRID) -> np.ndarray:
    """Mean row-wise F1 at each threshold of the grid of keeping the pairs whose `similarity` reaches it: selection_f1
    of every threshold in one pass, given the pairs' `pair_truth`.

    A pair reaches the thresholds grid[:b], b = its number of grid values <= its similarity (in float32, as
    lib.matching.pairs.above compares a plan's thresholds); each row's kept pairs per threshold are suffix sums of its
    counts per b.
    """
    true_pair, sizes = truth
    reached = np.searchsorted(grid.astype(np.float32), similarity.astype(np.float32), side="right")
    width = len(grid) + 1
    per_b = (
        np.bincount(c.rows[mask] * width + reached[mask], minlength=c.n * width).reshape(c.n, width)
        for mask in (true_pair, ~true_pair)
    )
    true_kept, false_kept = (np.cumsum(counts[:, ::-1], axis=1)[:, ::-1][:, 1:] for counts in per_b)
    return rows_f1(true_kept, false_kept, sizes[:, None])


def component_curves(c: Candidates, names, labels: np.ndarray, grid: np.ndarray = GRID) -> dict[str, np.ndarray]:
    """CV F1 against threshold of each named component alone."""
    truth = pair_truth(c, labels)
    return {name: f1_curve(c, c.similarity[name], truth, grid) for name in names}


def plan_size(plan: dict) -> int:
    """What a plan uses: components that match, min2 rules, groups and filters (of equal F1, the smaller wins)."""
    rules = plan["components"].values()
    min2 = [rule.get("min2") is not None for rule in rules]
    used = sum(rule["threshold"] < NO_MATCH or own for rule, own in zip(rules, min2)) + sum(min2)
    return used + len(plan.get("groups", [])) + bool(plan.get("unit_filter")) + bool(plan.get("mutual"))


def full(config: dict, names: list[str]) -> dict:
    """`config` over every component of `names` (those it lacks keep no pair), each with a min2 (None: none)."""
    rules = {name: {**OFF, **config["components"].get(name, {})} for name in names}
    groups = list(config.get("groups", []))
    return {
        "components": rules,
        "groups": groups,
        "unit_filter": bool(config.get("unit_filter")),
        "mutual": bool(config.get("mutual")),
    }


def pruned(plan: dict) -> dict:
    """The plan without the components that keep no pair (the first stays when none matches), min2 only where set."""
    rules = {name: rule for name, rule in plan["components"].items() if plan_size({"components": {name: rule}})}
    first = next(iter(plan["components"]))
    rules = rules or {first: plan["components"][first]}
    cleaned = {name: {k: v for k, v in rule.items() if v is not None} for name, rule in rules.items()}
    return {**plan, "components": cleaned}


def variants(plan: dict, coordinate: tuple[str, str], groups: list[str], grid: np.ndarray) -> list[dict]:
    """The plans that differ from `plan` in one coordinate: a component's threshold (on the grid or NO_MATCH) or its
    min2 (none or on the grid), which one component is kept alone, a filter or a group switched."""
    kind, name = coordinate
    rules = plan["components"]
    if kind in ("threshold", "min2"):
        values = [*map(float, grid), NO_MATCH] if kind == "threshold" else [None, *map(float, grid)]
        return [{**plan, "components": {**rules, name: {**rules[name], kind: value}}} for value in values]
    if kind == "only":
        return [{**plan, "components": {n: rules[n] if n == kept else OFF for n in rules}} for kept in rules]
    if kind == "flag":
        return [{**plan, name: not plan[name]}]
    return [{**plan, "groups": [group for group in groups if (group in plan["groups"]) != (group == name)]}]


def gallery_false(scale: float):
    """The expected false matches of each row in a gallery `scale` times as large, from its counts on this one: each
    count shrunk toward the mean by the gamma-Poisson posterior (moments of the counts), then scaled."""

    def expected(false: np.ndarray) -> np.ndarray:
        mean, variance = float(false.mean()), float(false.var())
        if mean == 0 or variance <= mean:  # nothing to learn per posting beyond chance: every row gets the mean
            return np.full(len(false), mean * scale)
        shape = mean * mean / (variance - mean)
        return (false + shape) * mean / (mean + shape) * scale

    return expected


def scorer(c: Candidates, labels: np.ndarray, conflicts, expected_false=None):
    """A plan's (CV F1, -size), remembered per plan; `expected_false` as lib.matching.pairs.selection_f1 takes it."""
    scores, truth = {}, pair_truth(c, labels)

    def score(plan: dict) -> tuple[float, int]:
        key = json.dumps(plan, sort_keys=True)
        if key not in scores:
            scores[key] = (selection_f1(c, predict(c, plan, conflicts), truth, expected_false), -plan_size(plan))
        return scores[key]

    return score


def ascend(start: dict, coordinates: list, groups: list[str], grid: np.ndarray, score) -> tuple[dict, tuple]:
    """Coordinate ascent from `start`: move to a coordinate's best variant while it beats the current plan."""
    current, current_score = start, score(start)
    moved = True
    while moved:
        moved = False
        for coordinate in coordinates:
            trial = max(variants(current, coordinate, groups, grid), key=score)
            if score(trial) > current_score:
                current, current_score, moved = trial, score(trial), True
    return current, current_score


def search(
    c: Candidates, config: dict, labels: np.ndarray, conflicts=None, grid: np.ndarray = GRID
) -> tuple[dict, float]:
    """The best plan evaluated (CV F1; of equal F1 the smaller) by coordinate ascent over every component's threshold
    and min2, each switched off, and the filters and groups switched, from `config`, from each component alone at its
    best threshold and from every posting alone. The ascent moves to a coordinate's best plan while it beats the
    current one, so the plan returned is at least as good as any one change to it (`ablation`).
    """
    names = list(dict.fromkeys([*config["components"], *c.nearest]))
    groups = [name for name in c.similarity if name not in c.nearest]
    coordinates = [(kind, name) for name in names for kind in ("threshold", "min2")] + [("only", "")]
    coordinates += [("flag", flag) for flag in (["unit_filter"] if conflicts is not None else []) + ["mutual"]]
    coordinates += [("group", group) for group in groups]
    score = scorer(c, labels, conflicts)
    curves = component_curves(c, c.nearest, labels, grid)
    alone = [{"components": {name: {"threshold": float(grid[np.argmax(curve)])}}} for name, curve in curves.items()]
    best, best_score = None, (-1.0, 0)
    for start in [config, *alone, {"components": {}}]:
        current, current_score = ascend(full(start, names), coordinates, groups, grid, score)
        if current_score > best_score:
            best, best_score = current, current_score
    return pruned(best), best_score[0]


def corrected_thresholds(c: Candidates, config: dict, labels: np.ndarray, target_rows: int, conflicts=None) -> dict:
    """The config with the thresholds and min2 of its matching components tuned again for a gallery of `target_rows`
    postings (`gallery_false`), by the search's ascent from the config; its rules and groups stay."""
    names = list(config["components"])
    matching = [name for name in names if plan_size({"components": {name: config["components"][name]}})]
    coordinates = [(kind, name) for name in matching for kind in ("threshold", "min2")]
    score = scorer(c, labels, conflicts, gallery_false((target_rows - 1) / max(c.n - 1, 1)))
    return pruned(ascend(full(config, names), coordinates, [], GRID, score)[0])


def ablation(c: Candidates, config: dict, labels: np.ndarray, conflicts=None) -> dict[str, float]:
    """CV F1 of the configuration, of each one-rule change to it at the same thresholds and of every posting alone."""
    plans = {"tuned": config, "every posting alone": {"components": {}}}
    for name in config["components"]:
        plans[f"only {name}"] = {**config, "components": {name: config["components"][name]}}
        if config["components"][name].get("min2") is not None:
            without = copy.deepcopy(config)
            without["components"][name]["min2"] = None
            plans[f"without min2 on {name}"] = without
    for flag in ["unit_filter", "mutual"] if conflicts is not None else ["mutual"]:
        plans[f"{'without' if config.get(flag) else 'with'} {flag}"] = {**config, flag: not config.get(flag)}
    for group in [name for name in c.similarity if name not in c.nearest]:
        groups = config.get("groups", [])
        changed = [g for g in groups if g != group] if group in groups else groups + [group]
        plans[f"{'without' if group in groups else 'with'} {group} groups"] = {**config, "groups": changed}
    return {name: pair_f1(c, predict(c, variant, conflicts), labels) for name, variant in plans.items()}
