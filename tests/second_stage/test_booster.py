"""lib/second_stage/booster.py: the GPU learner is taken only where it runs and agrees with the CPU's fit."""

import lightgbm as lgb
import numpy as np
import pytest
import torch

from lib.second_stage import booster, pair_model

BASE = {"objective": "binary", "seed": 0, "deterministic": True, "num_threads": 1, "verbose": -1}


def test_a_learner_that_cannot_run_here_leaves_the_cpu_and_says_why():
    chosen = booster.choose(BASE, {"device_type": "cuda"}, "CUDA")
    assert chosen.params == {}
    assert chosen.why.startswith("on the CPU: CUDA failed here") and "CUDA Tree Learner" in chosen.why


def test_a_learner_whose_fit_differs_from_the_cpus_is_refused():
    chosen = booster.choose(BASE, {"learning_rate": 0.5}, "a faster rate")
    features, truth = booster.check_data()

    def fit(params):
        return lgb.train(params, lgb.Dataset(features, label=truth), num_boost_round=booster.CHECK_ROUNDS)

    cpu, other = fit(BASE).predict(features), fit(BASE | {"learning_rate": 0.5}).predict(features)
    assert np.abs(cpu - other).max() > booster.AGREEMENT
    assert chosen.params == {} and chosen.why.startswith("on the CPU: a faster rate differs from it by")


def test_a_learner_that_agrees_is_taken():
    chosen = booster.choose(BASE, {"num_threads": 2}, "two threads")  # deterministic: the same model
    assert chosen.params == {"num_threads": 2} and chosen.why.startswith("on two threads: agrees with the CPU within 0")


def test_the_check_data_is_fixed_and_learnable():
    features, truth = booster.check_data()
    again, truth_again = booster.check_data()
    assert features.shape == (booster.CHECK_ROWS, 8) and np.array_equal(features, again)
    assert np.array_equal(truth, truth_again) and 0.2 < truth.mean() < 0.8


@pytest.mark.skipif(torch.cuda.is_available(), reason="on a CUDA machine the choice is the check fit's")
def test_the_pair_classifier_trains_on_the_cpu_without_a_cuda_device(capsys):
    booster.device.cache_clear()
    chosen = booster.device(tuple(pair_model.PARAMS.items()))
    assert chosen.params == {} and chosen.why == "on the CPU: no CUDA device"
    assert capsys.readouterr().out == "pair classifier: LightGBM on the CPU: no CUDA device\n"
