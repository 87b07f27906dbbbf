"""Each row's top k of scored pairs, held as int64 keys that order pairs by similarity, then by the lower column.

`encode` packs a float32 similarity and a column into one key, so a row's best pairs are its largest keys (ties: the
lower column first) and a top k of keys is deterministic; `decode` turns each row's keys back into `(sim, idx)`.
`top_keys` selects each row's k best of ragged entries (the rows of a sparse product): a histogram over [-1, 1] drops
the entries below the bin of their row's k-th largest, and the rest are sorted. The dense scan (lib.neighbours.dense)
and the sparse search (lib.neighbours.sparse) keep their neighbours as these keys.
"""

import numpy as np
import torch

BINS = 1024  # of the histogram over [-1, 1]
EMPTY = -0x7F800001 << 32  # the key of (-inf, column 2**32 - 1): below every pair, decodes to -inf
LOW_32_BITS = 0xFFFFFFFF


def flip_negative(bits: torch.Tensor) -> torch.Tensor:
    """Float32 bits as integers in float order, and back (the map is its own inverse)."""
    return bits ^ ((bits >> 31) & 0x7FFFFFFF)


def encode(sim: torch.Tensor, col: torch.Tensor) -> torch.Tensor:
    """int64 keys that order pairs by similarity, then by lower column: a top k of keys is deterministic."""
    bits = flip_negative((sim + 0.0).view(torch.int32).long())  # + 0.0 turns -0.0 into 0.0
    return (bits << 32) | (LOW_32_BITS - col)


def key_similarity(keys: torch.Tensor) -> torch.Tensor:
    """Float32 similarities of keys (-inf for EMPTY)."""
    return flip_negative(keys >> 32).int().view(torch.float32)


def decode(top: torch.Tensor, threshold: float | None) -> tuple[np.ndarray, np.ndarray]:
    """`(sim, idx)` numpy arrays of each row's top keys; -inf / -1 for EMPTY keys and those under `threshold`."""
    sim = key_similarity(top)
    if threshold is not None:
        sim = sim.masked_fill(sim < threshold, -torch.inf)
    idx = torch.where(sim > -torch.inf, LOW_32_BITS - (top & LOW_32_BITS), -1)
    return sim.cpu().numpy(), idx.cpu().numpy()


def top_keys(counts: torch.Tensor, col: torch.Tensor, values: torch.Tensor, k: int, threshold: float | None):
    """Each row's k largest keys (`encode`) among ragged entries that reach `threshold`, EMPTY past them, as a
    (rows, k) tensor: row r holds the next counts[r] entries of `col` and `values`. Entries below the bin (BINS over
    [-1, 1]) of their row's k-th largest go first, the rest are sorted. Bin numbers are int32: rows * BINS must fit
    (lib.neighbours.sparse.sparse_chunks bounds it)."""
    rows, device = len(counts), values.device
    first_bin = torch.arange(rows, dtype=torch.int32, device=device) * BINS
    if threshold is not None:
        passing = values >= threshold
        row = torch.repeat_interleave(torch.arange(rows, dtype=torch.int32, device=device), counts)[passing]
        col, values, counts = col[passing], values[passing], torch.bincount(row, minlength=rows)
    bins = (values * (BINS / 2) + BINS / 2).int().clamp_(0, BINS - 1) + torch.repeat_interleave(first_bin, counts)
    per_bin = torch.bincount(bins, minlength=rows * BINS).view(rows, BINS)
    kth_bin = ((per_bin.flip(1).cumsum(1).flip(1) >= k).sum(1, dtype=torch.int32) - 1).clamp_min(0) + first_bin
    kept = (bins >= torch.repeat_interleave(kth_bin, counts)).nonzero().squeeze(1)
    row, keys = torch.div(bins[kept], BINS, rounding_mode="floor"), encode(values[kept], col[kept].long())
    order = keys.argsort(descending=True, stable=True)
    order = order[row[order].argsort(stable=True)]
    row, keys = row[order], keys[order]
    rank = torch.arange(len(row), device=device) - torch.searchsorted(row, row)
    first = (rank < k).nonzero().squeeze(1)
    top = torch.full((rows, k), EMPTY, device=device)
    top[row[first], rank[first]] = keys[first]
    return top
