"""Features of candidate pairs for the second stage's pair classifier (lib.second_stage.pair_model).

Per component (an embedding's or a TF-IDF's neighbours): a pair's exact similarity, each posting's rank in the other's
list, the similarity against each posting's top 5, 10 and 30 neighbours, and each posting's neighbourhood density
standardised over its gallery; per image-text model, the pair's image-title similarity; then the title and phash
features of lib.second_stage.title_pairs. `PairFeatures` is built once for the n postings (per-posting tables) and
gives the feature matrix of any chunk of pairs, so that millions of pairs are scored a chunk at a time with bounded
memory. The features and why: docs/optimiser.md, *The second stage*.
"""

import warnings
from dataclasses import dataclass

import numpy as np

from lib.matching.pairs import pair_similarities
from lib.second_stage import title_pairs

TOP = (5, 10, 30)  # the neighbourhoods a pair's similarity is measured against
DENSITY = ("kth", "mean10", "std10")  # posting statistics given as gallery-standardised density features
EPSILON = 1e-3  # added to a neighbourhood's std: postings whose neighbours are all equally similar


@dataclass
class Neighbourhood:
    """One component's neighbour lists of n postings (itself excluded): sorted keys i * n + j with j's rank in i's
    list, each posting's top-K mean and std, and its gallery-standardised density."""

    keys: np.ndarray
    ranks: np.ndarray
    absent_rank: int
    mean: dict[int, np.ndarray]
    std: dict[int, np.ndarray]
    density: dict[str, np.ndarray]


def others_first(sim: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's neighbours other than itself, in order, packed to the left; NaN / -1 after them."""
    rows = np.arange(len(idx))[:, None]
    valid = (idx >= 0) & (idx != rows)
    order = np.argsort(~valid, axis=1, kind="stable")
    packed = np.take_along_axis(valid, order, axis=1)
    others = np.where(packed, np.take_along_axis(sim, order, axis=1), np.nan).astype(np.float32)
    return others, np.where(packed, np.take_along_axis(idx, order, axis=1), -1)


def standardised(values: np.ndarray) -> np.ndarray:
    """Values as z-scores over the postings of their gallery (NaN stays NaN)."""
    spread = np.nanstd(values) if np.isfinite(values).any() else 0.0
    return ((values - np.nanmean(values)) / max(float(spread), 1e-6)).astype(np.float32)


def neighbourhood(sim: np.ndarray, idx: np.ndarray) -> Neighbourhood:
    """The ranks and statistics of one component's `(sim, idx)` neighbours (lib.neighbours) of n postings."""
    n = len(idx)
    others, neighbours = others_first(sim, idx)
    counted = np.isfinite(others)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # no other neighbour: NaN statistics (LightGBM takes NaN)
        mean = {top: np.nanmean(others[:, :top], axis=1) for top in TOP}
        std = {top: np.nanstd(others[:, :top], axis=1) for top in TOP}
    last = np.maximum(counted.sum(axis=1) - 1, 0)
    kth = np.where(counted.any(axis=1), others[np.arange(n), last], np.nan)
    raw = {"kth": kth, "mean10": mean[10], "std10": std[10]}
    rows = np.repeat(np.arange(n), others.shape[1]).reshape(others.shape)
    keys = rows[counted] * n + neighbours[counted]
    ranks = (np.cumsum(counted, axis=1))[counted]
    order = np.argsort(keys)
    return Neighbourhood(
        keys[order],
        ranks[order].astype(np.float32),
        others.shape[1] + 1,
        mean,
        std,
        {name: standardised(raw[name]) for name in DENSITY},
    )


def ranks_of(hood: Neighbourhood, keys: np.ndarray) -> np.ndarray:
    """The rank of each key's column in its row's neighbour list, `absent_rank` where it is not there."""
    if not len(hood.keys):
        return np.full(len(keys), hood.absent_rank, dtype=np.float32)
    position = np.minimum(np.searchsorted(hood.keys, keys), len(hood.keys) - 1)
    return np.where(hood.keys[position] == keys, hood.ranks[position], hood.absent_rank).astype(np.float32)


def component_feature_names(name: str) -> list[str]:
    """The features of one component, in the order `PairFeatures.chunk` gives them."""
    names = [f"{name}.similarity", f"{name}.rank", f"{name}.reverse_rank"]
    names += [f"{name}.vs_{side}_top{top}" for top in TOP for side in ("row", "col")]
    return names + [f"{name}.{side}_{density}" for density in DENSITY for side in ("row", "col")]


def image_text_feature_name(model: str) -> str:
    """The pair feature of an image-text model's image-title similarity."""
    return f"{model}.image_text"


def image_text_similarity(image: np.ndarray, text: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """The mean of image[row] . text[col] and image[col] . text[row] of each pair (L2-normalised rows)."""
    there = np.einsum("ij,ij->i", image[rows], text[cols])
    back = np.einsum("ij,ij->i", image[cols], text[rows])
    return ((there + back) / 2).astype(np.float32)


class PairFeatures:
    """The features of any candidate pairs of n postings, from each component's vectors and neighbours, each
    image-text model's outputs, the titles and the image phashes."""

    def __init__(
        self, vectors: dict, neighbours: dict, titles: list[str], phashes: list[str], image_text: dict | None = None
    ):
        """`vectors`: name -> L2-normalised rows (numpy or scipy sparse); `neighbours`: name -> `(sim, idx)` of the
        same postings; `titles`: normalised (lib.data.text.normalise_title); `phashes`: hex image hashes;
        `image_text`: model name -> (image rows, text rows) of an image-text model, L2-normalised
        (lib.inference.pipeline.image_text_pairs)."""
        missing = set(vectors) ^ set(neighbours)
        if missing:
            raise ValueError(f"pair features: components {sorted(missing)} lack vectors or neighbours; give both")
        self.n = len(titles)
        self.vectors = vectors
        self.image_text = image_text or {}
        self.hoods = {name: neighbourhood(*neighbours[name]) for name in vectors}
        self.titles = title_pairs.title_tables(titles)
        self.phashes = title_pairs.phash_table(phashes)
        self.names = [feature for name in vectors for feature in component_feature_names(name)]
        self.names += [image_text_feature_name(model) for model in self.image_text]
        self.names += [*title_pairs.TITLE_FEATURES, "phash_distance"]

    def component(self, name: str, rows: np.ndarray, cols: np.ndarray) -> list[np.ndarray]:
        """One component's features of the pairs (`component_feature_names`)."""
        hood = self.hoods[name]
        similarity = pair_similarities(self.vectors[name], rows, cols)
        columns = [similarity, ranks_of(hood, rows * self.n + cols), ranks_of(hood, cols * self.n + rows)]
        for top in TOP:
            for side in (rows, cols):
                columns.append((similarity - hood.mean[top][side]) / (hood.std[top][side] + EPSILON))
        return columns + [hood.density[density][side] for density in DENSITY for side in (rows, cols)]

    def chunk(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """The float32 feature matrix (pairs x `names`) of the pairs (rows[i], cols[i])."""
        columns = [column for name in self.vectors for column in self.component(name, rows, cols)]
        columns += [image_text_similarity(image, text, rows, cols) for image, text in self.image_text.values()]
        titled = title_pairs.title_pair_features(self.titles, rows, cols)
        columns += [titled[name] for name in title_pairs.TITLE_FEATURES]
        columns.append(title_pairs.phash_distance(self.phashes, rows, cols))
        return np.column_stack(columns).astype(np.float32)
