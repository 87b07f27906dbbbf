import numpy as np
import pytest
import torch

from lib.knn import neighbors


def normalised(rows, width, seed):
    x = np.random.default_rng(seed).normal(size=(rows, width)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def brute_force(x, y, k):
    """Every similarity by a double loop over rows, then a full sort."""
    sims = np.array([[float(np.dot(a, b)) for b in y] for a in x])
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(sims, order, axis=1), order


@pytest.mark.parametrize("chunk_size", [7, 4096])
def test_self_search_matches_brute_force(chunk_size):
    x = normalised(60, 16, 0)
    sim, idx = neighbors(x, k=10, chunk_size=chunk_size)
    ref_sim, ref_idx = brute_force(x, x, 10)
    assert sim.shape == idx.shape == (60, 10)
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_allclose(sim, ref_sim, atol=1e-5)
    assert (idx[:, 0] == np.arange(60)).all()


def test_query_against_gallery_and_threshold():
    x, y = normalised(20, 8, 1), normalised(30, 8, 2)
    sim, idx = neighbors(x, y, k=5, threshold=0.3)
    ref_sim, ref_idx = brute_force(x, y, 5)
    below = ref_sim < 0.3
    np.testing.assert_array_equal(idx, np.where(below, -1, ref_idx))
    assert np.isneginf(sim[below]).all()
    np.testing.assert_allclose(sim[~below], ref_sim[~below], atol=1e-5)


def test_fewer_rows_than_k_are_padded():
    x = normalised(3, 4, 3)
    sim, idx = neighbors(x, k=5)
    assert (idx[:, 3:] == -1).all() and np.isneginf(sim[:, 3:]).all()
    assert sorted(idx[0, :3]) == [0, 1, 2]


def test_torch_float16_input_gives_the_same_neighbours():
    x = normalised(40, 32, 4)
    _, idx32 = neighbors(x, k=4)
    _, idx16 = neighbors(torch.from_numpy(x).half(), k=4)
    assert (idx32[:, 0] == idx16[:, 0]).all()
    assert (idx32 == idx16).mean() > 0.95
