"""lib.second_stage.pair_model: out-of-fold pair scores that never train on the postings they score, group weights."""

import lightgbm as lgb
import numpy as np
import pytest

from lib.data.folds import group_folds
from lib.second_stage import pair_model
from tools.bench.synthetic import synthetic_labels


def planted_pairs(seed: int = 0):
    """Pairs of 300 postings in groups, each with two features: a noisy similarity and a conflict flag that marks
    half of the look-alike false pairs."""
    rng = np.random.default_rng(seed)
    labels = synthetic_labels(300, seed)
    rows, cols = (rng.integers(0, 300, size=6000) for _ in range(2))
    same = np.flatnonzero(labels[:, None] == labels[None, :])
    rows, cols = np.concatenate([rows, same // 300]), np.concatenate([cols, same % 300])
    keep = rows != cols
    rows, cols = rows[keep], cols[keep]
    truth = labels[rows] == labels[cols]
    similarity = np.where(truth, 0.8, rng.choice([0.2, 0.8], size=len(rows))) + rng.normal(0, 0.05, len(rows))
    conflict = ~truth & (similarity > 0.5)
    features = np.column_stack([similarity, conflict]).astype(np.float32)
    return features, rows, cols, labels


def test_pair_weights_are_one_over_the_first_postings_group_size():
    labels = np.array([7, 7, 7, 3, 3, 9])
    rows = np.array([0, 3, 5, 1])
    expected = [1 / sum(labels == labels[row]) for row in rows]
    assert np.allclose(pair_model.pair_weights(rows, labels), expected)


def test_out_of_fold_scores_equal_models_trained_naively_without_the_fold():
    features, rows, cols, labels = planted_pairs()
    names = ["similarity", "conflict"]
    scores = pair_model.out_of_fold_scores(features, rows, cols, labels, names)
    fold = group_folds(labels, pair_model.FOLDS, 0)
    truth = labels[rows] == labels[cols]
    weights = pair_model.pair_weights(rows, labels)
    for held_out in range(pair_model.FOLDS):
        training = [i for i in range(len(rows)) if fold[rows[i]] != held_out and fold[cols[i]] != held_out]
        scored = [i for i in range(len(rows)) if fold[rows[i]] == held_out]
        assert not {rows[i] for i in training} & {rows[i] for i in scored}
        model = pair_model.train(features[training], truth[training], weights[training], names)
        assert np.allclose(scores[scored], model.predict(features[scored]), atol=1e-6)
    assert ((scores > 0.5) == truth).mean() > 0.95  # the conflict flag separates the look-alikes


def test_a_label_group_split_over_folds_is_refused():
    features, rows, cols, labels = planted_pairs()
    fold = group_folds(labels, pair_model.FOLDS, 0)
    member = np.flatnonzero(np.bincount(labels)[labels] > 1)[0]  # a posting whose group has others
    leaking = fold.copy()
    leaking[member] = (fold[member] + 1) % pair_model.FOLDS
    with pytest.raises(ValueError, match=f"label group {labels[member]} is in folds"):
        pair_model.out_of_fold_scores(features, rows, cols, labels, ["similarity", "conflict"], fold=leaking)


def test_a_training_pair_holding_a_held_out_posting_is_refused():
    labels = np.array([0, 0, 1, 1])
    fold = np.array([0, 0, 1, 1])
    rows, cols = np.array([0, 2, 1]), np.array([1, 3, 2])
    pair_model.check_no_leak(fold, labels, rows, cols, 0, np.array([False, True, False]))
    with pytest.raises(ValueError, match=r"training pair \(1, 2\) holds a posting of the fold"):
        pair_model.check_no_leak(fold, labels, rows, cols, 0, np.array([False, True, True]))


def test_the_final_model_is_saved_as_text_that_lightgbm_reads_back(tmp_path):
    features, rows, cols, labels = planted_pairs(1)
    model = pair_model.final_model(features, rows, cols, labels, ["similarity", "conflict"])
    model.save_model(str(tmp_path / "pair_model.txt"))
    loaded = lgb.Booster(model_file=str(tmp_path / "pair_model.txt"))
    assert loaded.feature_name() == ["similarity", "conflict"]
    assert np.allclose(loaded.predict(features), model.predict(features), atol=1e-12)
