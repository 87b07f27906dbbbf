"""Scoring candidate pairs with the saved pair classifier, a chunk of pairs at a time.

On a GPU with cuML importable, cuML's forest inference (FIL) scores the pairs: the 2nd place's pair inference took 40
minutes on the CPU and 2 with FIL. It is trusted only after it agrees with LightGBM on a sample of the pairs to be
scored (AGREEMENT); otherwise, and wherever cuML or the GPU is missing, LightGBM scores them on the CPU. Either way the
features are built one chunk of pairs at a time (lib.second_stage.pair_features), so memory stays bounded at millions of
pairs.
"""

from collections.abc import Callable
from pathlib import Path

import lightgbm as lgb
import numpy as np
import torch

CHUNK = 500_000  # pairs whose features are held at once: 500,000 x ~80 float32 = 160 MB
SAMPLE = 10_000  # pairs both scorers score before FIL is trusted
AGREEMENT = 1e-4  # the largest difference of probabilities allowed (FIL computes in float32)


def lightgbm_scorer(model_file: Path) -> Callable[[np.ndarray], np.ndarray]:
    """LightGBM's probabilities of the saved model, on the CPU."""
    booster = lgb.Booster(model_file=str(model_file))
    return lambda features: booster.predict(features).astype(np.float32)


def fil_scorer(model_file: Path) -> Callable[[np.ndarray], np.ndarray]:
    """cuML FIL's probabilities of the saved LightGBM model, on the GPU (ImportError without cuML)."""
    from cuml.fil import ForestInference

    forest = ForestInference.load(str(model_file), model_type="lightgbm", is_classifier=True)

    def score(features: np.ndarray) -> np.ndarray:
        probabilities = np.asarray(forest.predict_proba(features), dtype=np.float32)
        return probabilities[:, -1] if probabilities.ndim == 2 else probabilities

    return score


def checked(candidate: Callable, reference: Callable, sample: np.ndarray) -> str | None:
    """Why `candidate` cannot be trusted on the sample's features (None when it agrees with `reference`)."""
    try:
        difference = float(np.max(np.abs(candidate(sample) - reference(sample)), initial=0.0))
    except Exception as error:  # any failure of the accelerated path means the CPU path scores
        return f"{type(error).__name__}: {error}"
    return None if difference <= AGREEMENT else f"its probabilities differ from LightGBM's by up to {difference:.2g}"


def pair_scorer(model_file: Path, sample: np.ndarray) -> tuple[str, Callable]:
    """("fil" or "lightgbm", the scorer of the saved model): FIL where a GPU is present and FIL loads the model and
    agrees with LightGBM on the sample's features, else LightGBM."""
    reference = lightgbm_scorer(model_file)
    if not torch.cuda.is_available():
        return "lightgbm", reference
    return trusted(model_file, reference, sample, fil_scorer)


def trusted(model_file: Path, reference: Callable, sample: np.ndarray, accelerated: Callable) -> tuple[str, Callable]:
    """("fil", the accelerated scorer) when `accelerated(model_file)` loads and agrees with `reference` on the sample,
    else ("lightgbm", reference), with the reason printed."""
    try:
        candidate = accelerated(model_file)
    except Exception as error:  # cuML missing, or a model FIL cannot load: the CPU path scores
        print(f"pair scores by LightGBM on the CPU: FIL could not load {Path(model_file).name} ({error!r})")
        return "lightgbm", reference
    problem = checked(candidate, reference, sample[:SAMPLE])
    if problem:
        print(f"pair scores by LightGBM on the CPU: FIL is not trusted, {problem}")
        return "lightgbm", reference
    return "fil", candidate


def score_pairs(features, rows: np.ndarray, cols: np.ndarray, scorer: Callable, chunk: int = CHUNK) -> np.ndarray:
    """Each pair's probability: `features.chunk(rows, cols)` (lib.second_stage.pair_features), a chunk at a time."""
    scores = np.empty(len(rows), dtype=np.float32)
    for start in range(0, len(rows), chunk):
        part = slice(start, start + chunk)
        scores[part] = scorer(features.chunk(rows[part], cols[part]))
    return scores
