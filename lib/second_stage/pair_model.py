"""The second stage's pair classifier: LightGBM on the features of candidate pairs (lib.second_stage.pair_features).

Training never leaks. The postings it learns from are out-of-fold rows of the trained runs (their embeddings never saw
them) or, for the title plan, train itself (nothing in it was trained). The classifier's own CV is a group k-fold over
label groups (lib.data.folds): the model of fold f trains only on pairs of which neither posting is in fold f, and
scores the pairs whose first posting is in fold f, so no posting's own pairs are in the training fold of the model that
scores them (`check_no_leak` refuses any that would be). Each pair is weighted by 1 / the size of its first posting's
label group: the metric averages postings, and a posting's F1 is spread over its group's pairs. The model for new
postings is then trained on every pair with the same settings; it is saved in LightGBM's text format, which both
LightGBM and cuML's forest inference read (lib.second_stage.forest).
"""

import os

import lightgbm as lgb
import numpy as np

from lib.data.folds import group_folds
from lib.devices import free_cpus
from lib.second_stage import booster

FOLDS = 5
ROUNDS = 300
PARAMS = {
    "objective": "binary",
    "learning_rate": 0.05,
    "num_leaves": 31,
    "min_data_in_leaf": 20,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "seed": 0,
    "deterministic": True,
    "force_row_wise": True,
    "num_threads": len(os.sched_getaffinity(0)),  # the most it may use; `train` takes the free ones (LightGBM's 0, all
    # of the machine's, ran 100x slower on 2 cores)
    "verbose": -1,
}


def check_no_leak(fold: np.ndarray, labels: np.ndarray, rows: np.ndarray, cols: np.ndarray, held_out: int, training):
    """Raise ValueError when a label group spans folds or a training pair holds a posting of the held-out fold."""
    groups, first = np.unique(labels, return_index=True)
    spread = fold != fold[first][np.searchsorted(groups, labels)]
    if spread.any():
        row = int(np.flatnonzero(spread)[0])
        raise ValueError(
            f"pair classifier folds: label group {labels[row]} is in folds {sorted(set(fold[labels == labels[row]]))}; "
            "every group must be in one fold (lib.data.folds.group_folds), or the classifier learns groups it scores"
        )
    touching = training & ((fold[rows] == held_out) | (fold[cols] == held_out))
    if touching.any():
        pair = int(np.flatnonzero(touching)[0])
        raise ValueError(
            f"pair classifier fold {held_out}: training pair ({rows[pair]}, {cols[pair]}) holds a posting of the fold "
            "it is scored on; train only on pairs with neither posting in the held-out fold"
        )


def pair_weights(rows: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """1 / the size of each pair's first posting's label group."""
    _, inverse, sizes = np.unique(labels, return_inverse=True, return_counts=True)
    return 1.0 / sizes[inverse][rows]


def train(features: np.ndarray, truth: np.ndarray, weights: np.ndarray, names: list[str]) -> lgb.Booster:
    """A LightGBM classifier of the pairs' truth, with PARAMS for ROUNDS rounds, on the device lib.second_stage.booster
    chooses, with a thread per free CPU (lib.devices.free_cpus; the model is the same on any number of threads)."""
    data = lgb.Dataset(features, label=truth.astype(np.float32), weight=weights, feature_name=names, free_raw_data=True)
    params = PARAMS | {"num_threads": free_cpus()} | booster.device(tuple(PARAMS.items())).params
    return lgb.train(params, data, num_boost_round=ROUNDS)


def out_of_fold_scores(
    features: np.ndarray, rows: np.ndarray, cols: np.ndarray, labels: np.ndarray, names: list[str], fold=None
) -> np.ndarray:
    """Each pair's probability from the model of its first posting's fold, trained without that fold's postings.

    `fold`: each posting's fold (label groups kept whole), by default lib.data.folds.group_folds(labels, FOLDS, 0).
    """
    fold = group_folds(labels, FOLDS, 0) if fold is None else np.asarray(fold)
    truth = labels[rows] == labels[cols]
    weights = pair_weights(rows, labels)
    scores = np.zeros(len(rows), dtype=np.float32)
    for held_out in np.unique(fold):
        training = (fold[rows] != held_out) & (fold[cols] != held_out)
        check_no_leak(fold, labels, rows, cols, held_out, training)
        scored = fold[rows] == held_out
        model = train(features[training], truth[training], weights[training], names)
        scores[scored] = model.predict(features[scored])
    return scores


def final_model(features: np.ndarray, rows: np.ndarray, cols: np.ndarray, labels: np.ndarray, names: list[str]):
    """The classifier for new postings, trained on every pair."""
    return train(features, labels[rows] == labels[cols], pair_weights(rows, labels), names)
