"""Validation folds: GroupKFold on label_group, stratified by group size (the scheme of Kaggle discussion 228794).

Every posting of a label group lands in one fold, so validation groups are unseen in training; groups of each
size are dealt to the folds in turn, so every fold holds the same mix of pairs, triples and large groups.
"""

import numpy as np


def group_folds(labels, count: int, seed: int) -> np.ndarray:
    """The fold (0..count-1) of each posting, from its label group.

    Groups are shuffled by `seed`, ordered by size (largest first, ties in shuffled order) and dealt to the folds
    back and forth (0, 1, ..., count-1, count-1, ..., 0, ...), which keeps the folds' row counts close.
    """
    groups, inverse, sizes = np.unique(np.asarray(labels), return_inverse=True, return_counts=True)
    if len(groups) < count:
        raise ValueError(f"folds.count: {count} folds need at least {count} label groups; the data has {len(groups)}")
    shuffled = np.random.default_rng(seed).permutation(len(groups))
    order = shuffled[np.argsort(-sizes[shuffled], kind="stable")]
    position = np.arange(len(groups))
    lap, step = np.divmod(position, count)
    dealt = np.where(lap % 2 == 0, step, count - 1 - step)
    fold_of_group = np.empty(len(groups), dtype=np.int64)
    fold_of_group[order] = dealt
    return fold_of_group[inverse]
