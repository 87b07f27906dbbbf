"""lib.neighbours.sparse: both product paths against a dense reference and each other."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from lib.neighbours import sparse, top_k
from lib.neighbours.sparse import sparse_neighbors
from tests.neighbours.test_dense import assert_neighbours


def sparse_rows(rows, width, seed):
    """L2-normalised non-negative sparse rows (TF-IDF-like), the first five repeated at the end; one row is empty."""
    x = sp.random(rows, width, density=0.05, random_state=seed, format="csr", dtype=np.float64)
    x = x[np.argsort(np.diff(x.indptr) == 0, kind="stable")]
    x = sp.vstack([x, x[:5]]).tocsr()
    scale = 1 / np.maximum(np.sqrt(np.asarray(x.multiply(x).sum(axis=1))).ravel(), 1e-12)
    scale[rows - 1] = 0
    x = (sp.diags(scale) @ x).tocsr()
    x.eliminate_zeros()
    return x


def assert_same_up_to_ties(first, second, similarity):
    """Two `(sim, idx)` answers agree: equal similarities per rank, and where indices differ, both have the same
    similarity (a tie, whose order can follow the last float32 bit of a sum)."""
    np.testing.assert_allclose(first[0], second[0], atol=1e-6)
    rows, ranks = np.nonzero(first[1] != second[1])
    a, b = first[1][rows, ranks], second[1][rows, ranks]
    assert (a >= 0).all() and (b >= 0).all()
    np.testing.assert_allclose(similarity[rows, a], similarity[rows, b], atol=1e-6)


def torch_on_cpu(x, *, k, threshold=None):
    """The torch sparse path (CUDA's at run time) forced on the CPU."""
    return sparse.torch_sparse_neighbors(x, k=k, threshold=threshold, device="cpu")


@pytest.mark.parametrize("search", [sparse_neighbors, torch_on_cpu])
@pytest.mark.parametrize("k", [3, 50])
@pytest.mark.parametrize("threshold", [None, 0.1])
def test_sparse_paths_match_a_dense_reference_and_each_other(monkeypatch, search, k, threshold):
    monkeypatch.setattr(sparse, "PRODUCTS_PER_CHUNK", 20 * top_k.BINS)
    x = sparse_rows(200, 60, 14)
    dense = x.toarray()
    similarity = dense @ dense.T
    assert len(sparse.sparse_chunks(sp.csr_matrix(x, dtype=np.float32))) > 5
    sim, idx = search(x, k=k, threshold=threshold)
    assert_neighbours(sim, idx, similarity, k, threshold, allowed=similarity > 0)
    assert (idx[:5, 0] == np.arange(5)).all() and (idx[200:, 0] == np.arange(5)).all()
    assert (idx[199] == -1).all()
    assert_same_up_to_ties((sim, idx), sparse_neighbors(x, k=k, threshold=threshold), similarity)
    empty = search(x[:0], k=k)
    assert empty[0].shape == empty[1].shape == (0, k) and empty[0].dtype == np.float32
    no_terms = search(sp.csr_matrix((4, 0), dtype=np.float32), k=k, threshold=threshold)
    assert (no_terms[1] == -1).all() and no_terms[1].shape == (4, k)


def test_torch_sparse_path_on_marketplace_titles():
    from lib.data.text import normalise_title, tfidf_vectors
    from tools.data.make_sample import build_catalog, make_listings

    rng = np.random.default_rng(5)
    titles = [normalise_title(title) for title in make_listings(rng, build_catalog(rng, 1500)).title]
    x = tfidf_vectors(titles)
    dense = x.toarray().astype(np.float64)
    similarity = dense @ dense.T
    ours = torch_on_cpu(x, k=50)
    assert_neighbours(*ours, similarity, 50, allowed=similarity > 0)
    assert_same_up_to_ties(ours, sparse_neighbors(x, k=50), similarity)


def test_cuda_paths_are_chosen_at_run_time_only_when_cuda_exists(monkeypatch):
    x = sparse_rows(30, 10, 17)
    calls = []

    def on_device(x, *, k, threshold, device):
        calls.append(device)
        return "device answer"

    monkeypatch.setattr(sparse, "torch_sparse_neighbors", on_device)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert sparse.default_device() == torch.device("cpu")
    assert sparse_neighbors(x, k=2)[1].shape == (35, 2) and calls == []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert sparse.default_device() == torch.device("cuda")
    assert sparse_neighbors(x, k=2) == "device answer" and calls == [torch.device("cuda")]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_sparse_path_gives_the_cpu_answers():
    x = sparse_rows(2000, 300, 18)
    dense = x.toarray()
    similarity = dense @ dense.T
    ours = sparse_neighbors(x, k=20)
    assert_neighbours(*ours, similarity, 20, allowed=similarity > 0)
    assert_same_up_to_ties(ours, torch_on_cpu(x, k=20), similarity)
