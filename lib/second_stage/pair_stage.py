"""The second stage end to end: candidate pairs both ways -> pair features -> classifier -> graph steps -> matches.

`fit` is what the optimiser does on the out-of-fold postings of the trained runs (and the inference kernel on train for
the title plan): every candidate pair of the plan's components (the union of each component's k neighbours and the
identical-title / identical-phash groups, both ways) gets its features (lib.second_stage.pair_features) and an
out-of-fold probability (lib.second_stage.pair_model); the graph steps are searched on those
(lib.second_stage.graph_search), and the classifier for new postings is trained on every pair. `score` scores new
postings' pairs under a fitted stage, a chunk at a time by FIL or LightGBM (lib.second_stage.forest), for
lib.second_stage.graph.apply.
"""

from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import lightgbm as lgb
import numpy as np

from lib.data.folds import group_folds
from lib.matching import pairs
from lib.second_stage import forest, graph_search, pair_model
from lib.second_stage.pair_features import PairFeatures

MODEL_FILE = "pair_model.txt"


@dataclass
class Scored:
    """Candidate pairs both ways, their features (matrix and names) and out-of-fold probabilities."""

    candidates: pairs.Candidates
    features: np.ndarray
    names: list[str]
    scores: np.ndarray


@dataclass
class Fitted:
    """A fitted second stage: the scored pairs, the graph steps searched on them (config, each step's CV F1 and whether
    it was kept), the stage's CV F1 and the classifier for new postings."""

    scored: Scored
    config: dict
    steps: list[dict]
    f1: float
    model: lgb.Booster


def untimed(_: str):
    """No timing of a part (the default `timer`)."""
    return nullcontext()


def cross_validated(
    vectors: dict,
    neighbours: dict,
    c: pairs.Candidates,
    titles,
    phashes,
    labels,
    timer=untimed,
    image_text=None,
    folds=pair_model.FOLDS,
):
    """Every candidate pair of `c`, both ways, with its out-of-fold probability (the classifier's group k-fold of
    `folds` folds); `timer(part)` is a context timing each part ("features", "classifier by group k-fold");
    `image_text`: each image-text model's outputs, as lib.second_stage.pair_features.PairFeatures takes them."""
    both = pairs.both_ways(c)
    with timer("features"):
        features = PairFeatures(vectors, neighbours, titles, phashes, image_text)
        matrix = features.chunk(both.rows, both.cols)
    with timer("classifier by group k-fold"):
        fold = group_folds(labels, folds, 0)
        scores = pair_model.out_of_fold_scores(matrix, both.rows, both.cols, labels, features.names, fold)
    return Scored(both, matrix, features.names, scores)


def fit(
    vectors: dict,
    neighbours: dict,
    c: pairs.Candidates,
    titles,
    phashes,
    labels,
    timer=untimed,
    image_text=None,
    folds=pair_model.FOLDS,
) -> Fitted:
    """The second stage fitted on labelled postings: `vectors` / `neighbours` of the components, candidate pairs `c`
    (lib.matching.pairs.candidates), normalised titles, phashes and label groups; `timer`, `image_text` and `folds`
    as cross_validated takes them (`timer` also times "graph search", "final classifier")."""
    scored = cross_validated(vectors, neighbours, c, titles, phashes, labels, timer, image_text, folds)
    with timer("graph search"):
        config, steps = graph_search.search(scored.candidates, scored.scores, labels)
    f1 = max(step["f1"] for step in steps if step["kept"])
    with timer("final classifier"):
        both = scored.candidates
        model = pair_model.final_model(scored.features, both.rows, both.cols, labels, scored.names)
    return Fitted(scored, config, steps, f1, model)


def score(
    vectors: dict, neighbours: dict, c: pairs.Candidates, titles, phashes, stage: dict, folder: Path, image_text=None
):
    """The candidate pairs both ways, their probabilities under a fitted stage of a plan (its model file in `folder`,
    its feature names) and which scorer scored them ("fil" or "lightgbm"); lib.second_stage.graph.apply then matches.
    The features (`image_text` as cross_validated takes it) are built and scored a chunk of pairs at a time."""
    both = pairs.both_ways(c)
    features = PairFeatures(vectors, neighbours, titles, phashes, image_text)
    if features.names != stage["features"]:
        raise ValueError(
            f"pair_stage.features: the plan's classifier takes {len(stage['features'])} features, its components give "
            f"{len(features.names)} (first difference: "
            f"{next((a, b) for a, b in zip(stage['features'] + [None], features.names + [None]) if a != b)}); "
            "use the components the optimiser fitted the stage on"
        )
    model_file = Path(folder) / stage["file"]
    sample = features.chunk(both.rows[: forest.SAMPLE], both.cols[: forest.SAMPLE])
    name, scorer = forest.pair_scorer(model_file, sample)
    return both, forest.score_pairs(features, both.rows, both.cols, scorer), name
