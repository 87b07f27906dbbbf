"""Matching rules: neighbour lists, identical-key groups, union, the cap of 50."""

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

MAX_MATCHES = 50


def neighbor_lists(idx: np.ndarray) -> list[list[int]]:
    """Each row's neighbours from a `(sim, idx)` search, nearest first, itself first and once."""
    return [[row] + [int(j) for j in neighbours if j >= 0 and j != row] for row, neighbours in enumerate(idx)]


def identical_key_groups(keys: Sequence[str]) -> list[list[int]]:
    """Rows sharing the same non-empty key (e.g. a normalised title), itself first."""
    members = defaultdict(list)
    for row, key in enumerate(keys):
        if key:
            members[key].append(row)
    return [[row] + [j for j in members.get(key, []) if j != row] for row, key in enumerate(keys)]


def union(*components: list[list[int]]) -> list[list[int]]:
    """Row-wise union of several matchings, in the order the components are given, capped at 50."""
    merged = []
    for lists in zip(*components):
        seen = dict.fromkeys(j for matches in lists for j in matches)
        merged.append(list(seen)[:MAX_MATCHES])
    return merged


def to_posting_ids(matches: list[list[int]], posting_ids: Sequence[str]) -> list[list[str]]:
    """Row indices to posting ids, capped at 50 per posting."""
    return [[posting_ids[j] for j in row[:MAX_MATCHES]] for row in matches]
