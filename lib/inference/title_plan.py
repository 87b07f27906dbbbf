"""The title plan (lib.inference.plan.TITLE_PLAN) tuned on train by the inference kernel, within a bound set by design.

Without an optimiser's plan both of the kernel's runs tune the title plan on train (the scoring rerun cannot read the
commit run's outputs). The tuning's costs grow with its rows, so it takes at most SAMPLE_ROWS postings: whole label
groups drawn in a seeded shuffle of train.csv's groups while they fit (both runs draw the same rows), and the pair
classifier's CV takes PAIR_FOLDS group folds. Both were chosen from the stages' times at Shopee's size
(`make bench-title-plan`; docs/results.md, *The title plan's time bound*).
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lib.inference import correction, pipeline
from lib.inference.plan import TITLE_PLAN
from lib.inference.stopwatch import Stopwatch
from lib.inference.time_budget import KAGGLE_TRAIN_ROWS
from lib.matching import ensemble, pairs, thresholds
from lib.second_stage import pair_stage

SAMPLE_ROWS = 20_000
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


@dataclass
class OnTrain:
    """The title plan tuned on train's sample, and what the gallery correction and the evaluation take from it.

    Attributes:
        plan: TITLE_PLAN with the tuned rules, and its second stage where it is used.
        out_of_fold: the sample's candidate pairs, conflicts, labels (and the stage's pair scores where it is used).
        rows: the sample's postings; titles: their normalised titles; signals: their lib.inference.pipeline.Signals.
        evaluated_on: what the rows are, in words.
        stage: the second stage's F1, whether it is used, its pairs, graph steps and steps' F1; None without one.
    """

    plan: dict
    out_of_fold: correction.OutOfFold
    rows: object
    titles: list[str]
    signals: pipeline.Signals
    evaluated_on: str
    stage: dict | None


def tune_on_train(
    train, train_titles: list[str], image_dir: Path, corpus: list[str], settings: dict, stopwatch: Stopwatch
) -> OnTrain:
    """TITLE_PLAN tuned on train's `sample` (`train_titles`: normalised, train's images in `image_dir`): its rules,
    and, where `settings["pair_stage"]`, its second stage, used (its classifier saved as pair_stage.MODEL_FILE) where
    it beats the rules by ensemble.MIN_GAIN; timed in the phase "title plan" at KAGGLE_ROWS. `settings` as for
    lib.inference.pipeline.signals."""
    rows = sample(train.label_group.to_numpy())
    postings = train.iloc[rows].reset_index(drop=True)
    titles, labels = [train_titles[row] for row in rows], postings.label_group.to_numpy()
    print(f"the title plan is tuned on {len(postings)} of the {len(train)} train postings (whole label groups)")
    with stopwatch.phase("title plan", KAGGLE_ROWS):
        found = pipeline.signals(TITLE_PLAN, postings, titles, image_dir, corpus, settings, stopwatch)
        parts = (found.candidates, found.conflicts, found.vectors, found.neighbours)
        tuned = tune(parts, titles, list(postings.image_phash), labels, stopwatch, settings["pair_stage"])
    plan = {**TITLE_PLAN, "matching": tuned.rules}
    out_of_fold = correction.OutOfFold(found.candidates, found.conflicts, labels)
    report, fitted = None, tuned.stage
    if fitted:
        used = fitted.f1 >= tuned.f1 + ensemble.MIN_GAIN
        report = {"f1": fitted.f1, "used": used, "pairs": len(fitted.scored.scores), "graph": fitted.config}
        report["steps"] = fitted.steps
        if used:
            fitted.model.save_model(pair_stage.MODEL_FILE)
            plan["pair_stage"] = {"file": pair_stage.MODEL_FILE, "features": fitted.scored.names}
            plan["pair_stage"]["graph"] = fitted.config
            out_of_fold.stage_pairs, out_of_fold.stage_scores = fitted.scored.candidates, fitted.scored.scores
    whole = len(postings) == len(train)
    on = "all of train" if whole else f"train's sample of whole label groups ({len(postings)} rows)"
    return OnTrain(plan, out_of_fold, postings, titles, found, on, report)
