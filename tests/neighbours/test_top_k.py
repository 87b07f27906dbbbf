"""lib.neighbours.top_k: keys in the order of (similarity, lower column); each row's top k against a per-row sort."""

import numpy as np
import pytest
import torch

from lib.neighbours import top_k


def test_keys_order_pairs_by_similarity_then_lower_column_and_decode_back():
    sim = torch.tensor([0.5, -0.25, 0.5, 1.0, -0.0, 0.0, -1.0])
    col = torch.tensor([3, 0, 1, 7, 2, 4, 5])
    keys = top_k.encode(sim, col)
    by_key = torch.argsort(keys, descending=True).tolist()
    assert by_key == sorted(range(len(sim)), key=lambda i: (-float(sim[i]), int(col[i])))
    assert torch.equal(top_k.key_similarity(keys), sim + 0.0)
    empty = torch.tensor([top_k.EMPTY])
    assert top_k.key_similarity(empty).item() == -np.inf and (keys > top_k.EMPTY).all()
    found_sim, found_idx = top_k.decode(torch.stack([keys, torch.full_like(keys, top_k.EMPTY)]), threshold=0.0)
    assert found_idx[0].tolist() == [3, -1, 1, 7, 2, 4, -1] and (found_idx[1] == -1).all()
    assert found_sim.dtype == np.float32 and found_idx.dtype == np.int64 and np.isneginf(found_sim[1]).all()


def per_row_sort(counts, col, values, k, threshold):
    """Each row's entries that reach the threshold, sorted by decreasing value then column, the first k, padded."""
    sims, idxs, start = [], [], 0
    for count in counts:
        entries = [(v, c) for v, c in zip(values[start : start + count], col[start : start + count])]
        entries = sorted((e for e in entries if threshold is None or e[0] >= threshold), key=lambda e: (-e[0], e[1]))
        entries = entries[:k] + [(-np.inf, -1)] * (k - len(entries[:k]))
        sims.append([v for v, _ in entries])
        idxs.append([c for _, c in entries])
        start += count
    return np.array(sims, dtype=np.float32).reshape(-1, k), np.array(idxs, dtype=np.int64).reshape(-1, k)


@pytest.mark.parametrize("k", [1, 4, 30])
@pytest.mark.parametrize("threshold", [None, 0.25])
def test_top_keys_are_each_rows_best_entries_with_ties_to_the_lower_column(k, threshold):
    rng = np.random.default_rng(k)
    counts = rng.integers(0, 25, size=40)
    counts[[3, 17]] = 0
    col = np.concatenate([rng.permutation(60)[:count] for count in counts]).astype(np.int32)
    values = rng.choice(np.float32([-1.0, -0.5, 0.0, 0.25, 0.3, 0.3001, 0.7, 1.0]), size=int(counts.sum()))
    values[::7] = rng.uniform(-1, 1, size=len(values[::7])).astype(np.float32)
    tensors = [torch.from_numpy(a) for a in (counts, col, values)]
    sim, idx = top_k.decode(top_k.top_keys(*tensors, k, threshold), None)
    ref_sim, ref_idx = per_row_sort(counts.tolist(), col.tolist(), values.tolist(), k, threshold)
    np.testing.assert_array_equal(sim, ref_sim)
    np.testing.assert_array_equal(idx, ref_idx)


def test_top_keys_of_no_rows_and_of_rows_without_entries():
    none = torch.zeros(0, dtype=torch.int64)
    assert top_k.top_keys(none, none.int(), none.float(), 3, None).shape == (0, 3)
    empty = top_k.top_keys(torch.zeros(2, dtype=torch.int64), none.int(), none.float(), 3, 0.5)
    assert (empty == top_k.EMPTY).all() and empty.shape == (2, 3)
