"""Synthetic data the benchmarks (and lib's tests) share: label groups, embeddings of them with a model's noise, a
scored candidate graph, marketplace titles and postings from tools.data.make_sample's generator; and the inference
kernel's settings the title plan's stages run with here."""

import numpy as np
import pandas as pd

from lib.data.text import normalise_title
from lib.matching.pairs import Candidates
from tools.data.make_sample import build_catalog, make_listings

KERNEL_SETTINGS = {"batch_size": 64, "workers": 0, "max_length": 64, "k": 50}  # the inference kernel's CONFIG


def synthetic_labels(rows: int, seed: int = 0) -> np.ndarray:
    """Label groups of 1 to 6 postings, in a shuffled order."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 7, size=rows)
    labels = np.repeat(np.arange(rows), sizes)[:rows]
    return rng.permutation(labels)


def synthetic_embeddings(labels: np.ndarray, noise: float, dim: int, seed: int) -> np.ndarray:
    """Unit group centres (shared by every model: seed 0) plus Gaussian noise of scale `noise` per coordinate."""
    centres = np.random.default_rng(0).normal(size=(labels.max() + 1, dim)).astype(np.float32) / np.sqrt(dim)
    noisy = centres[labels] + np.random.default_rng(seed).normal(scale=noise, size=(len(labels), dim)) / np.sqrt(dim)
    return noisy.astype(np.float32)


def synthetic_graph(rows: int, others: int, seed: int = 0) -> tuple[Candidates, np.ndarray, np.ndarray]:
    """Symmetric candidate pairs over `synthetic_labels` groups, each direction's score, and the labels."""
    rng = np.random.default_rng(seed)
    labels = synthetic_labels(rows, seed)
    order = np.argsort(labels, kind="stable")
    starts = np.searchsorted(labels[order], labels)
    ends = np.searchsorted(labels[order], labels, side="right")
    mates = [(row, int(mate)) for row in range(rows) for mate in order[starts[row] : ends[row]] if mate != row]
    random = np.column_stack([np.repeat(np.arange(rows), others), rng.integers(0, rows, rows * others)])
    pairs = np.concatenate([np.array(mates, dtype=np.int64).reshape(-1, 2), random])
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    keys = np.unique(np.concatenate([pairs[:, 0] * rows + pairs[:, 1], pairs[:, 1] * rows + pairs[:, 0]]))
    c = Candidates(rows, keys // rows, keys % rows, {}, {})
    same = labels[c.rows] == labels[c.cols]
    score = np.where(same, rng.beta(2.5, 1.5, len(keys)), rng.beta(0.4, 4, len(keys))).astype(np.float32)
    return c, score, labels


def marketplace_titles(n: int) -> list[str]:
    """n normalised titles of make_sample's generator: brands, product types, variants, units, promo words."""
    rng = np.random.default_rng(0)
    return [normalise_title(title) for title in make_listings(rng, build_catalog(rng, n)).title[:n]]


def titled_postings(rows: int, seed: int) -> pd.DataFrame:
    """`rows` synthetic postings (posting_id, title, image_phash, label_group), whole label groups but the last."""
    rng = np.random.default_rng(seed)
    listings = make_listings(rng, build_catalog(rng, rows)).head(rows)
    phashes = [f"{value:016x}" for value in rng.integers(0, 2**63, size=rows)]
    ids = [f"p{seed}_{row}" for row in range(rows)]
    return pd.DataFrame({"posting_id": ids, "title": listings.title, "image_phash": phashes}).assign(
        label_group=listings.label_group.to_numpy()
    )
