"""lib.second_stage.forest: FIL chosen only where it loads and agrees with LightGBM, LightGBM otherwise (the CPU path
here: cuML cannot run without a GPU)."""

import numpy as np
import torch

from lib.second_stage import forest, pair_model
from tests.second_stage.test_pair_model import planted_pairs

NAMES = ["similarity", "conflict"]


def saved_model(path, flip: bool = False):
    """A pair classifier of the planted pairs (of the opposite truth when `flip`) saved at `path`."""
    features, rows, cols, labels = planted_pairs()
    truth = (labels[rows] == labels[cols]) != flip
    model = pair_model.train(features, truth, pair_model.pair_weights(rows, labels), NAMES)
    model.save_model(str(path))
    return features


def test_without_a_gpu_lightgbm_scores_the_pairs(tmp_path):
    features = saved_model(tmp_path / "pair_model.txt")
    name, scorer = forest.pair_scorer(tmp_path / "pair_model.txt", features)
    assert not torch.cuda.is_available() and name == "lightgbm"
    expected = forest.lgb.Booster(model_file=str(tmp_path / "pair_model.txt")).predict(features)
    assert np.allclose(scorer(features), expected, atol=1e-6)


def test_fil_is_not_trusted_where_cuml_is_missing(tmp_path, capsys):
    features = saved_model(tmp_path / "pair_model.txt")
    reference = forest.lightgbm_scorer(tmp_path / "pair_model.txt")
    name, scorer = forest.trusted(tmp_path / "pair_model.txt", reference, features, forest.fil_scorer)
    assert name == "lightgbm" and scorer is reference
    assert "FIL could not load pair_model.txt" in capsys.readouterr().out


def test_an_accelerated_scorer_that_disagrees_is_not_trusted(tmp_path, capsys):
    features = saved_model(tmp_path / "pair_model.txt")
    saved_model(tmp_path / "other.txt", flip=True)
    reference = forest.lightgbm_scorer(tmp_path / "pair_model.txt")
    disagreeing = lambda _: forest.lightgbm_scorer(tmp_path / "other.txt")  # noqa: E731
    name, scorer = forest.trusted(tmp_path / "pair_model.txt", reference, features, disagreeing)
    assert name == "lightgbm" and scorer is reference
    assert "FIL is not trusted, its probabilities differ from LightGBM's" in capsys.readouterr().out


def test_an_accelerated_scorer_that_agrees_is_used(tmp_path):
    features = saved_model(tmp_path / "pair_model.txt")
    reference = forest.lightgbm_scorer(tmp_path / "pair_model.txt")
    name, scorer = forest.trusted(tmp_path / "pair_model.txt", reference, features, forest.lightgbm_scorer)
    assert name == "fil" and scorer is not reference
    assert np.array_equal(scorer(features), reference(features))
