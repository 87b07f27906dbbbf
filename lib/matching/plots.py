"""Plots a kernel leaves in its output: similarity histograms of true vs false pairs, F1 against threshold."""

import matplotlib.pyplot as plt
import numpy as np

from lib.matching.pairs import Candidates, pair_truth


def similarity_histograms(c: Candidates, labels: np.ndarray, names: list[str]) -> plt.Figure:
    """For each component, the similarity of its candidate pairs that truly match vs those that do not."""
    figure, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3), squeeze=False)
    true_pair, _ = pair_truth(c, labels)
    for axis, name in zip(axes[0], names):
        present = np.isfinite(c.similarity[name])
        bins = np.linspace(0, 1, 51)
        axis.hist(c.similarity[name][present & ~true_pair], bins=bins, alpha=0.6, label="different groups")
        axis.hist(c.similarity[name][present & true_pair], bins=bins, alpha=0.6, label="same group")
        axis.set(title=name, xlabel="cosine similarity", ylabel="candidate pairs", yscale="log")
    axes[0][0].legend()
    figure.tight_layout()
    return figure


def f1_curves(grid: np.ndarray, curves: dict[str, np.ndarray], chosen: dict[str, float]) -> plt.Figure:
    """CV F1 against threshold per component, with the chosen thresholds marked."""
    figure, axis = plt.subplots(figsize=(6, 4))
    for name, curve in curves.items():
        line = axis.plot(grid, curve, label=name)[0]
        if name in chosen:
            axis.axvline(chosen[name], color=line.get_color(), linestyle=":")
    axis.set(xlabel="threshold", ylabel="CV mean F1", title="F1 against threshold (dotted: chosen)")
    axis.legend()
    figure.tight_layout()
    return figure
