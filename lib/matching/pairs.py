"""Matching rules on candidate pairs: thresholds, min2, union, mutual and unit filters, identical-key groups.

Every component (an embedding set's neighbours, or a grouping by identical key) contributes candidate pairs
(row, col), row != col. Rules are boolean masks over the pairs, so that predicting and scoring a setting of
thresholds is a few vectorised operations; `predict` composes them from a configuration:

    {"components": {"text": {"threshold": 0.8, "min2": 0.6}, "tfidf": {"threshold": 0.7}},
     "groups": ["title"], "mutual": False, "unit_filter": True}
"""

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from lib.data.submission import MAX_MATCHES
from lib.data.text import quantities, quantities_differ

NO_MATCH = 1.01  # a threshold above every cosine similarity: the component keeps no pair


@dataclass
class Candidates:
    """Candidate pairs of n postings with each component's similarity (-inf where not its neighbour)."""

    n: int
    rows: np.ndarray
    cols: np.ndarray
    similarity: dict[str, np.ndarray]
    nearest: dict[str, np.ndarray]

    @property
    def keys(self) -> np.ndarray:
        return self.rows * self.n + self.cols


def pair_keys(sim: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keys, similarities and nearest-other flags of a `(sim, idx)` search's non-self pairs."""
    n = len(idx)
    rows = np.repeat(np.arange(n), idx.shape[1]).reshape(idx.shape)
    valid = (idx >= 0) & (idx != rows)
    first_other = valid & (np.cumsum(valid, axis=1) == 1)
    return rows[valid] * n + idx[valid], sim[valid], first_other[valid]


def pair_similarities(x, rows: np.ndarray, cols: np.ndarray, chunk: int = 65536) -> np.ndarray:
    """x[rows[i]] . x[cols[i]] of a dense array or scipy sparse matrix (TF-IDF), a chunk of pairs at a time."""
    similarity = np.empty(len(rows), dtype=np.float32)
    for start in range(0, len(rows), chunk):
        a, b = x[rows[start : start + chunk]], x[cols[start : start + chunk]]
        products = a.multiply(b).sum(axis=1).A1 if sp.issparse(x) else np.einsum("ij,ij->i", a, b)
        similarity[start : start + chunk] = products
    return similarity


def both_ways(c: Candidates) -> Candidates:
    """The candidate pairs with each pair's reverse added (similarity -inf, not nearest, where it was no candidate)."""
    keys = c.keys
    every = np.union1d(keys, c.cols * c.n + c.rows)
    position = np.searchsorted(every, keys)
    similarity, nearest = {}, {}
    for name, values in c.similarity.items():
        similarity[name] = np.full(len(every), -np.inf, dtype=np.float32)
        similarity[name][position] = values
    for name, values in c.nearest.items():
        nearest[name] = np.zeros(len(every), dtype=bool)
        nearest[name][position] = values
    return Candidates(c.n, every // max(c.n, 1), every % max(c.n, 1), similarity, nearest)


def group_keys(keys: Sequence[str]) -> np.ndarray:
    """Pair keys of postings sharing a non-empty key (e.g. a normalised title); groups over 50 are left out."""
    n, members = len(keys), defaultdict(list)
    for row, key in enumerate(keys):
        if key:
            members[key].append(row)
    pairs = [a * n + b for rows in members.values() if len(rows) <= MAX_MATCHES for a in rows for b in rows if a != b]
    return np.array(pairs, dtype=np.int64)


def candidates(neighbours: dict[str, tuple[np.ndarray, np.ndarray]], groups: dict[str, Sequence[str]]) -> Candidates:
    """Candidate pairs from named `(sim, idx)` searches and named identical-key groupings of the same postings."""
    n = len(next(iter(neighbours.values()))[1]) if neighbours else len(next(iter(groups.values())))
    searched = {name: pair_keys(sim, idx) for name, (sim, idx) in neighbours.items()}
    grouped = {name: group_keys(keys) for name, keys in groups.items()}
    every = [keys for keys, _, _ in searched.values()] + list(grouped.values())
    keys = np.unique(np.concatenate(every)) if every else np.zeros(0, dtype=np.int64)
    similarity, nearest = {}, {}
    for name, (own, sim, first) in searched.items():
        position = np.searchsorted(keys, own)
        similarity[name] = np.full(len(keys), -np.inf, dtype=np.float32)
        similarity[name][position] = sim
        nearest[name] = np.zeros(len(keys), dtype=bool)
        nearest[name][position] = first
    for name, own in grouped.items():
        similarity[name] = np.where(np.isin(keys, own), np.float32(1), np.float32(-np.inf))
    return Candidates(n, keys // max(n, 1), keys % max(n, 1), similarity, nearest)


def above(c: Candidates, name: str, threshold: float) -> np.ndarray:
    """Pairs whose similarity in one component reaches its threshold."""
    return c.similarity[name] >= threshold


def min2(c: Candidates, name: str, selected: np.ndarray, threshold: float) -> np.ndarray:
    """Also keep each row's nearest other posting where nothing else was kept, unless it is under `threshold`."""
    alone = np.bincount(c.rows[selected], minlength=c.n) == 0
    return selected | (c.nearest[name] & (c.similarity[name] >= threshold) & alone[c.rows])


def mutual(c: Candidates, selected: np.ndarray) -> np.ndarray:
    """Keep a pair only when its reverse pair is kept too."""
    kept = np.sort(c.keys[selected])
    if not len(kept):
        return selected
    reverse = c.cols * c.n + c.rows
    position = np.minimum(np.searchsorted(kept, reverse), len(kept) - 1)
    return selected & (kept[position] == reverse)


def unit_conflicts(c: Candidates, normalised_titles: Sequence[str]) -> np.ndarray:
    """Pairs whose titles state amounts of the same kind that differ (`500 ml` vs `250 ml`, `xl` vs `l`)."""
    return amount_conflicts([quantities(title) for title in normalised_titles], c.rows, c.cols)


def amount_conflicts(amounts: Sequence[dict], rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Pairs (rows[k], cols[k]) whose postings' amounts (`quantities` of each title) differ (`quantities_differ`)."""
    stated = np.array([bool(a) for a in amounts], dtype=bool)
    both = np.flatnonzero(stated[rows] & stated[cols])
    conflicts = np.zeros(len(rows), dtype=bool)
    conflicts[both] = [quantities_differ(amounts[rows[k]], amounts[cols[k]]) for k in both]
    return conflicts


def predict(c: Candidates, config: dict, conflicts: np.ndarray | None = None) -> np.ndarray:
    """The pairs a matching configuration keeps: per-component thresholds (and min2), union, filters, groups."""
    selected = np.zeros(len(c.rows), dtype=bool)
    for name, rule in config["components"].items():
        own = above(c, name, rule["threshold"])
        if rule.get("min2") is not None:
            own = min2(c, name, own, rule["min2"])
        selected |= own
    if config.get("unit_filter"):
        if conflicts is None:
            raise ValueError("unit_filter is on: pass conflicts=unit_conflicts(candidates, normalised_titles)")
        selected &= ~conflicts
    if config.get("mutual"):
        selected = mutual(c, selected)
    for name in config.get("groups", []):
        selected |= above(c, name, 1.0)
    return selected


def best_similarity(c: Candidates) -> np.ndarray:
    """Each pair's highest similarity over the searched components, used to rank matches."""
    searched = [sim for name, sim in c.similarity.items() if name in c.nearest]
    return np.max(searched, axis=0) if searched else np.zeros(len(c.rows), dtype=np.float32)


def to_lists(c: Candidates, selected: np.ndarray) -> list[list[int]]:
    """Each row's matches: itself first, then the kept pairs by best similarity, capped at 50."""
    order = np.lexsort((-best_similarity(c)[selected], c.rows[selected]))
    rows, cols = c.rows[selected][order], c.cols[selected][order]
    bounds = np.searchsorted(rows, np.arange(c.n + 1))
    return [[row] + cols[bounds[row] : bounds[row + 1]].tolist()[: MAX_MATCHES - 1] for row in range(c.n)]


def pair_truth(c: Candidates, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Which candidate pairs join one label group, and the size of each row's group."""
    _, inverse, sizes = np.unique(labels, return_inverse=True, return_counts=True)
    return labels[c.rows] == labels[c.cols], sizes[inverse]


def rows_f1(true_kept: np.ndarray, false_kept: np.ndarray, sizes: np.ndarray):
    """Mean over rows (axis 0) of the F1 of each row's kept pairs plus itself against its group of `sizes` postings,
    from its counts of true and false kept pairs: the one mean-F1-from-pairs formula."""
    hits = true_kept + 1
    return np.mean(2 * hits / (hits + false_kept + sizes), axis=0)


def selection_f1(c: Candidates, selected: np.ndarray, truth: tuple, expected_false=None) -> float:
    """Mean row-wise F1 of kept pairs plus self, given their `pair_truth`, without building match lists (no cap);
    `expected_false` maps each row's false matches to those expected in another gallery (lib.matching.thresholds)."""
    true_pair, sizes = truth
    true_kept = np.bincount(c.rows[selected & true_pair], minlength=c.n)
    false_kept = np.bincount(c.rows[selected & ~true_pair], minlength=c.n)
    if expected_false is not None:
        false_kept = expected_false(false_kept)
    return float(rows_f1(true_kept, false_kept, sizes))


def pair_f1(c: Candidates, selected: np.ndarray, labels: np.ndarray) -> float:
    """Mean row-wise F1 of kept pairs plus self against label groups (`selection_f1`)."""
    return selection_f1(c, selected, pair_truth(c, labels))


def to_posting_ids(matches: list[list[int]], posting_ids: Sequence[str]) -> list[list[str]]:
    """Row indices to posting ids, capped at 50 per posting."""
    return [[posting_ids[j] for j in row[:MAX_MATCHES]] for row in matches]
