"""Where LightGBM trains the pair classifier: on the GPU where it runs there and agrees with the CPU, else the CPU.

LightGBM's wheels carry an OpenCL GPU learner. It is used only when a CUDA device is present, LightGBM finds an OpenCL
device, and a check fit on fixed synthetic pairs gives probabilities within AGREEMENT of the CPU's fit on the same
data (double-precision histograms, as close to the CPU as LightGBM's GPU learner comes). Otherwise every fit runs on
the CPU, whose answers the tests pin. The choice is made once per process and printed.
"""

import functools
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import torch

GPU = {"device_type": "gpu", "gpu_use_dp": True}
CHECK_ROWS = 20_000
CHECK_ROUNDS = 50
AGREEMENT = 1e-3  # the largest difference of the check fit's probabilities allowed


@dataclass(frozen=True)
class Choice:
    """The parameters a fit adds to the classifier's own (none on the CPU) and why they were chosen."""

    params: dict
    why: str


def check_data() -> tuple[np.ndarray, np.ndarray]:
    """CHECK_ROWS seeded pairs of 8 features whose truth depends on three of them, with noise."""
    rng = np.random.default_rng(0)
    features = rng.random((CHECK_ROWS, 8))
    truth = (features[:, 0] + 0.5 * features[:, 1] - features[:, 2] + 0.3 * rng.standard_normal(CHECK_ROWS)) > 0.3
    return features, truth.astype(np.float32)


def check_fit(params: dict, features: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """The probabilities of a CHECK_ROUNDS fit with `params` on the check data."""
    return lgb.train(params, lgb.Dataset(features, label=truth), num_boost_round=CHECK_ROUNDS).predict(features)


def choose(base: dict, candidate: dict, name: str) -> Choice:
    """`candidate` (called `name`) when a check fit with `base | candidate` runs and agrees with `base`'s within
    AGREEMENT, else no change (the CPU), each with the reason."""
    features, truth = check_data()
    try:
        tried = check_fit(base | candidate, features, truth)
    except lgb.basic.LightGBMError as error:
        return Choice({}, f"on the CPU: {name} failed here ({str(error).strip()})")
    difference = float(np.abs(tried - check_fit(base, features, truth)).max())
    if difference > AGREEMENT:
        return Choice({}, f"on the CPU: {name} differs from it by {difference:.2g} on the check fit")
    return Choice(candidate, f"on {name}: agrees with the CPU within {difference:.2g} on the check fit")


@functools.cache
def device(base: tuple) -> Choice:
    """This process's choice for the classifier's parameters `base` (a tuple of items, to be cached): the GPU
    learner where a CUDA device is present and `choose` accepts it; printed once."""
    if torch.cuda.is_available():
        chosen = choose(dict(base), GPU, "the GPU (OpenCL)")
    else:
        chosen = Choice({}, "on the CPU: no CUDA device")
    print(f"pair classifier: LightGBM {chosen.why}")
    return chosen
