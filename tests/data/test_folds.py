"""lib.data.folds: groups never split, every fold with the same mix of group sizes, deterministic for a seed."""

from collections import Counter

import numpy as np
import pytest

from lib.data.folds import group_folds


def labels_with_sizes(sizes: list[int], seed: int = 0) -> np.ndarray:
    """Rows of groups of the given sizes, shuffled, group ids not in size order."""
    rng = np.random.default_rng(seed)
    ids = rng.permutation(len(sizes)) * 7 + 1000
    return rng.permutation(np.repeat(ids, sizes))


SIZES = [2] * 60 + [3] * 25 + [4] * 10 + [5] * 5 + [12, 20, 30, 45, 50]


def test_every_group_is_in_one_fold():
    labels = labels_with_sizes(SIZES)
    folds = group_folds(labels, 5, seed=0)
    for group in np.unique(labels):
        assert len(set(folds[labels == group])) == 1, group
    assert set(folds) == set(range(5))


def test_each_fold_holds_the_same_mix_of_group_sizes():
    labels = labels_with_sizes(SIZES)
    folds = group_folds(labels, 5, seed=0)
    sizes = Counter(labels)
    for size, count in Counter(SIZES).items():
        per_fold = Counter(folds[labels == g][0] for g in sizes if sizes[g] == size)
        assert max(per_fold.values(), default=0) - min(per_fold.get(f, 0) for f in range(5)) <= 1, size
        assert sum(per_fold.values()) == count


def test_fold_row_counts_are_close():
    labels = labels_with_sizes(SIZES)
    rows = np.bincount(group_folds(labels, 5, seed=0))
    assert rows.max() - rows.min() <= 50  # the largest group alone has 50 rows


def test_deterministic_for_a_seed_and_different_across_seeds():
    labels = labels_with_sizes(SIZES)
    assert np.array_equal(group_folds(labels, 5, seed=1), group_folds(labels, 5, seed=1))
    assert not np.array_equal(group_folds(labels, 5, seed=1), group_folds(labels, 5, seed=2))


def test_string_labels_and_too_few_groups():
    folds = group_folds(["a", "a", "b", "c", "c"], 3, seed=0)
    assert folds[0] == folds[1] and folds[3] == folds[4] and sorted(set(folds)) == [0, 1, 2]
    assert folds[2] == 2, "the single posting comes last: larger groups are dealt first"
    with pytest.raises(ValueError, match="folds.count: 4 folds need at least 4 label groups; the data has 3"):
        group_folds(["a", "b", "c"], 4, seed=0)
