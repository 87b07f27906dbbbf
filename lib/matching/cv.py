"""CV of a model's embeddings: F1 of each output at its best threshold and of the union of outputs."""

import numpy as np

from lib.matching import pairs, thresholds
from lib.neighbours.dense import neighbors


def cv_scores(embeddings: dict[str, np.ndarray], labels: np.ndarray, k: int) -> tuple[dict, dict[str, np.ndarray]]:
    """CV F1 of each output at its best threshold and of their union (lib.matching.thresholds.search: the outputs it
    uses), with the thresholds, and each output's F1 against threshold (lib.matching.thresholds.GRID)."""
    rows = len(labels)
    neighbours = {output: neighbors(values, k=min(k, rows)) for output, values in embeddings.items()}
    c = pairs.candidates(neighbours, {})
    curves = thresholds.component_curves(c, embeddings, labels)
    alone = {output: float(thresholds.GRID[np.argmax(curve)]) for output, curve in curves.items()}
    start = {"components": {output: {"threshold": threshold} for output, threshold in alone.items()}}
    union, union_f1 = thresholds.search(c, start, labels)
    scores = {
        "f1": {**{output: float(curve.max()) for output, curve in curves.items()}, "union": float(union_f1)},
        "thresholds": {
            **alone,
            "union": {output: rule["threshold"] for output, rule in union["components"].items()},
        },
    }
    return scores, curves
