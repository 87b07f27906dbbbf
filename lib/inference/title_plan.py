"""The title plan (lib.inference.plan.TITLE_PLAN) tuned on train by the inference kernel, within a bound set by design.

Without an optimiser's plan the kernel tunes the title plan on train in both of its runs: the scoring rerun cannot read
the commit run's outputs, so it tunes again within its 2-hour limit, beside its 70,000 test postings. The tuning's
costs grow with its rows (the search and the gallery correction with the candidate pairs, the pair classifier with its
pairs and its folds), so it takes at most SAMPLE_ROWS postings: whole label groups (a group's pairs are what the
metric scores), drawn in the order of a seeded shuffle while they fit. The draw depends only on train.csv's label
groups, so both runs tune on the same rows. The pair classifier's CV (its out-of-fold probabilities, on which the graph
steps are searched) takes PAIR_FOLDS group folds.

SAMPLE_ROWS and PAIR_FOLDS were chosen from the stages' times at the full size (`make bench-title-plan`,
tools/bench/title_plan.py: synthetic titles, 34,250 train and 70,000 test postings, against the tuning on all of train
with lib.matching.pair_model.FOLDS): README, *The title plan's time bound*.
"""

from dataclasses import dataclass

import numpy as np

from lib.inference.plan import TITLE_PLAN
from lib.inference.timing import KAGGLE_TRAIN_ROWS, Stopwatch
from lib.matching import pair_stage, pairs, thresholds

SAMPLE_ROWS = 10_000
SAMPLE_SEED = 0
PAIR_FOLDS = 3
KAGGLE_ROWS = min(SAMPLE_ROWS, KAGGLE_TRAIN_ROWS)  # the tuning's rows on Kaggle's train, for the time projection


def sample(labels: np.ndarray) -> np.ndarray:
    """The rows the title plan is tuned on, ascending: whole label groups in the order of a shuffle seeded by
    SAMPLE_SEED, up to the first that would take them past SAMPLE_ROWS postings (all rows when there are no more)."""
    groups, inverse, sizes = np.unique(np.asarray(labels), return_inverse=True, return_counts=True)
    order = np.random.default_rng(SAMPLE_SEED).permutation(len(groups))
    drawn = np.zeros(len(groups), dtype=bool)
    drawn[order[np.cumsum(sizes[order]) <= SAMPLE_ROWS]] = True
    return np.flatnonzero(drawn[inverse])


@dataclass
class Tuned:
    """The title plan's rules searched on train with their CV F1, and its second stage fitted there (or None)."""

    rules: dict
    f1: float
    stage: pair_stage.Fitted | None


def tune(
    signals: tuple[pairs.Candidates, np.ndarray, dict, dict],
    titles: list[str],
    phashes: list[str],
    labels: np.ndarray,
    stopwatch: Stopwatch,
    with_stage: bool,
    folds: int = PAIR_FOLDS,
) -> Tuned:
    """The rules (lib.matching.thresholds.search from TITLE_PLAN's) and, `with_stage`, the second stage with its
    classifier's CV by `folds` group folds, on postings' `signals` (candidate pairs, unit conflicts, component vectors,
    neighbours), normalised titles, phashes and label groups; each part timed as a stage of `stopwatch`."""
    c, conflicts, vectors, neighbours = signals
    with stopwatch.stage("threshold search", len(labels)):
        rules, f1 = thresholds.search(c, TITLE_PLAN["matching"], labels, conflicts)
    if not with_stage:
        return Tuned(rules, f1, None)

    def timer(part: str):
        return stopwatch.stage(f"pair stage: {part}", len(labels))

    return Tuned(rules, f1, pair_stage.fit(vectors, neighbours, c, titles, phashes, labels, timer, folds=folds))
