import numpy as np
import pytest
import scipy.sparse as sp
import torch

from lib.neighbours import knn
from lib.neighbours.knn import neighbors, sparse_neighbors


def normalised(rows, width, seed):
    x = np.random.default_rng(seed).normal(size=(rows, width)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def clustered(rows, width, seed):
    """Rows around a few shared centres plus a direction common to all: many near neighbours, as in embeddings."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(rows // 8, width))
    x = centres[rng.integers(0, len(centres), rows)] + 0.3 * rng.normal(size=(rows, width)) + rng.normal(size=width)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def brute_force(x, y, k):
    """Every similarity by a double loop over rows, then a full sort."""
    sims = np.array([[float(np.dot(a, b)) for b in y] for a in x])
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(sims, order, axis=1), order


def reference(similarity, k, threshold=None, allowed=None):
    """Top k of each row of a full similarity matrix by a stable sort (ties: lower index first); -inf / -1 where
    fewer than k entries are `allowed` and reach `threshold`."""
    passing = np.ones(similarity.shape, bool) if allowed is None else allowed.copy()
    if threshold is not None:
        passing &= similarity >= threshold
    masked = np.where(passing, similarity, -np.inf)
    order = np.argsort(-masked, axis=1, kind="stable")[:, :k]
    sim = np.take_along_axis(masked, order, axis=1)
    sim = np.pad(sim, ((0, 0), (0, k - sim.shape[1])), constant_values=-np.inf)
    order = np.pad(order, ((0, 0), (0, k - order.shape[1])), constant_values=-1)
    return sim, np.where(sim > -np.inf, order, -1)


def assert_neighbours(sim, idx, similarity, k, threshold=None, allowed=None):
    """`(sim, idx)` is the top k of `similarity` up to ties: each rank's similarity matches the reference's, every
    returned index has the similarity returned with it, and no index repeats in a row."""
    ref_sim, _ = reference(similarity, k, threshold, allowed)
    assert sim.shape == idx.shape == (len(similarity), k)
    assert sim.dtype == np.float32 and idx.dtype == np.int64
    np.testing.assert_allclose(sim, ref_sim, atol=1e-5)
    found = idx >= 0
    assert (found == (sim > -np.inf)).all()
    rows = np.nonzero(found)[0]
    np.testing.assert_allclose(sim[found], similarity[rows, idx[found]], atol=1e-5)
    assert all(len(set(row[row >= 0])) == (row >= 0).sum() for row in idx)


SCANS = [torch.bfloat16, torch.float16, torch.float32]  # bfloat16: CPUs with AMX / AVX512-BF16; float16: CUDA


@pytest.fixture(params=SCANS, ids=str)
def scan(request, monkeypatch) -> torch.dtype:
    """Each precision the scan can run in, forced on this CPU."""
    monkeypatch.setattr(knn, "scan_dtype", lambda device: request.param)
    return request.param


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


def test_torch_float16_input_gives_the_neighbours_of_its_values():
    x = torch.from_numpy(normalised(40, 32, 4)).half()
    values = x.float().numpy().astype(np.float64)
    sim, idx = neighbors(x, k=4)
    assert_neighbours(sim, idx, values @ values.T, 4)


@pytest.mark.parametrize("data", [normalised, clustered])
@pytest.mark.parametrize("chunk_size", [40, 4096])
@pytest.mark.parametrize("threshold", [None, 0.5])
def test_self_search_over_many_strips(data, chunk_size, threshold, scan):
    x = data(300, 48, 5).astype(np.float64)
    sim, idx = neighbors(x.astype(np.float32), k=12, threshold=threshold, chunk_size=chunk_size)
    assert_neighbours(sim, idx, x @ x.T, 12, threshold)


@pytest.mark.parametrize("data", [normalised, clustered])
@pytest.mark.parametrize("threshold", [None, 0.5])
def test_query_search_over_many_strips(data, threshold, scan):
    x, y = data(200, 40, 6), data(300, 40, 7)
    sim, idx = neighbors(torch.from_numpy(x), y, k=9, threshold=threshold, chunk_size=64)
    assert_neighbours(sim, idx, x.astype(np.float64) @ y.astype(np.float64).T, 9, threshold)


def test_query_with_k_above_the_gallery_and_empty_inputs():
    x, y = normalised(10, 8, 8), normalised(3, 8, 9)
    sim, idx = neighbors(x, y, k=5)
    assert_neighbours(sim, idx, x.astype(np.float64) @ y.astype(np.float64).T, 5)
    assert (idx[:, 3:] == -1).all()
    sim, idx = neighbors(x, y[:0], k=2)
    assert (idx == -1).all() and np.isneginf(sim).all()
    assert neighbors(x[:0], k=2)[1].shape == (0, 2)


def test_neighbours_closer_than_the_scan_resolves(scan):
    rng = np.random.default_rng(15)
    x = rng.normal(size=64) + 0.03 * rng.normal(size=(300, 64))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    sim, idx = neighbors(x, k=10, chunk_size=64)
    assert_neighbours(sim, idx, x.astype(np.float64) @ x.astype(np.float64).T, 10)


def test_duplicated_rows_tie_to_the_lower_index():
    base = normalised(6, 8, 10)
    x = base[[0, 1, 0, 2, 3, 0, 1, 4, 5, 0]]
    sim, idx = neighbors(x, k=3, chunk_size=4)
    ref_sim, ref_idx = brute_force(x, x, 3)
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_array_equal(idx[0], [0, 2, 5])
    np.testing.assert_allclose(sim, ref_sim, atol=1e-6)


def test_rows_exactly_at_the_threshold_are_kept():
    x = np.array([[1, 0, 0, 0], [0.5, 0.5, 0.5, 0.5], [0.5, 0.5, 0.5, -0.5], [0, 0, 0, 1]], dtype=np.float32)
    sim, idx = neighbors(x, k=4, threshold=0.5)
    np.testing.assert_array_equal(idx[0], [0, 1, 2, -1])
    np.testing.assert_array_equal(sim[1, :3], [1.0, 0.5, 0.5])
    _, idx = neighbors(x, k=4, threshold=np.nextafter(np.float32(0.5), np.float32(1)))
    np.testing.assert_array_equal(idx[:, 1:], -1)


@pytest.mark.parametrize("data", [normalised, clustered])
@pytest.mark.parametrize("scale", [1.0, 1e-3])  # 1e-3: float16 values under its normal range (2^-14) lose precision
def test_the_scan_stays_within_its_error_bound(data, scale, scan):
    x = torch.from_numpy(data(256, 512, 12)) * scale
    low, norm, residual = knn.scan_copy(x, 100)
    assert low.dtype == scan
    error, relative = knn.scan_error(x.shape[1], norm, residual, low.dtype)
    scanned = (low @ low.T).float()
    exact = x.double() @ x.double().T
    assert ((scanned - exact).abs() <= error + relative * scanned.abs()).all()


def test_cutoff_keys_hold_every_scanned_value_at_or_above_the_cutoff(scan):
    values = torch.linspace(-1, 2, 5001)
    cutoffs = torch.tensor([-0.5, 0.0, 1e-9, 0.1, 0.3337, 0.5, 0.9999, 1.0, 1.5])
    keys = knn.order_keys(values.to(scan))
    for cutoff, key in zip(cutoffs, knn.cutoff_keys(cutoffs, scan)):
        at_or_above = values.to(scan).float() >= cutoff
        assert (keys[at_or_above] >= key).all(), float(cutoff)


@pytest.mark.parametrize(
    "flags, cpu_scan",
    [
        ({"avx2", "avx512f"}, torch.float32),
        ({"amx_bf16", "amx_tile"}, torch.bfloat16),
        ({"avx512_bf16"}, torch.bfloat16),
    ],
)
def test_the_scan_precision_follows_the_device_and_the_cpu(monkeypatch, flags, cpu_scan):
    monkeypatch.setattr(knn, "cpu_flags", lambda: frozenset({"fpu", *flags}))
    assert knn.scan_dtype(torch.device("cpu")) == cpu_scan
    assert knn.scan_dtype(torch.device("cuda")) == torch.float16


def test_the_cpu_flags_are_read_from_linux():
    assert "fpu" in knn.cpu_flags(), "every x86-64 CPU lists fpu in /proc/cpuinfo"


def test_cuda_float16_sums_stay_in_float32_during_a_search_only():
    matmul = torch.backends.cuda.matmul
    before = matmul.allow_fp16_reduced_precision_reduction
    with knn.full_precision_sums():
        assert matmul.allow_fp16_reduced_precision_reduction is False
    assert matmul.allow_fp16_reduced_precision_reduction == before


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_gives_the_cpu_answers():
    x = torch.from_numpy(clustered(2000, 64, 13))
    cpu_sim, cpu_idx = neighbors(x, k=20, chunk_size=256)
    cuda_sim, cuda_idx = neighbors(x.cuda().half(), k=20, chunk_size=256)
    values = x.half().float().numpy().astype(np.float64)
    assert_neighbours(cuda_sim, cuda_idx, values @ values.T, 20)
    assert (cpu_idx[:, 0] == cuda_idx[:, 0]).all()


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
    return knn.torch_sparse_neighbors(x, k=k, threshold=threshold, device="cpu")


@pytest.mark.parametrize("search", [sparse_neighbors, torch_on_cpu])
@pytest.mark.parametrize("k", [3, 50])
@pytest.mark.parametrize("threshold", [None, 0.1])
def test_sparse_paths_match_a_dense_reference_and_each_other(monkeypatch, search, k, threshold):
    monkeypatch.setattr(knn, "PRODUCTS_PER_CHUNK", 20 * knn.BINS)
    x = sparse_rows(200, 60, 14)
    dense = x.toarray()
    similarity = dense @ dense.T
    assert len(knn.sparse_chunks(sp.csr_matrix(x, dtype=np.float32))) > 5
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

    monkeypatch.setattr(knn, "torch_sparse_neighbors", on_device)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert knn.default_device() == torch.device("cpu")
    assert sparse_neighbors(x, k=2)[1].shape == (35, 2) and calls == []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert knn.default_device() == torch.device("cuda")
    assert sparse_neighbors(x, k=2) == "device answer" and calls == [torch.device("cuda")]
    monkeypatch.setattr(knn, "default_device", lambda: torch.device("meta"))
    assert knn.as_tensor(np.ones((2, 2), np.float32)).device == torch.device("meta"), "numpy goes where CUDA is"
    assert knn.as_tensor(torch.ones(2, 2)).device == torch.device("cpu"), "a tensor stays on its device"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_sparse_path_gives_the_cpu_answers():
    x = sparse_rows(2000, 300, 18)
    dense = x.toarray()
    similarity = dense @ dense.T
    ours = sparse_neighbors(x, k=20)
    assert_neighbours(*ours, similarity, 20, allowed=similarity > 0)
    assert_same_up_to_ties(ours, torch_on_cpu(x, k=20), similarity)
