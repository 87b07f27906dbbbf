"""Exact cosine neighbours of sparse rows (TF-IDF) among themselves, a bounded number of products at a time.

`sparse_neighbors` computes x @ x.T a chunk of rows at a time (`sparse_chunks` bounds each chunk's products and its
histogram) and keeps each row's top k by lib.neighbours.top_k.top_keys: the products by scipy on the CPU, or by torch
sparse CSR products on CUDA when it is available at run time (`torch_sparse_neighbors`). Both give the same neighbours
up to ties (sums of products in another order can differ in the last float32 bit).
"""

import warnings
from collections.abc import Callable

import numpy as np
import scipy.sparse as sp
import torch

from lib.devices import default_device
from lib.neighbours.top_k import BINS, EMPTY, decode, top_keys

PRODUCTS_PER_CHUNK = 1 << 23


def csr_tensor(crow: torch.Tensor, col: torch.Tensor, values: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """A torch sparse CSR tensor (torch warns that the layout is in beta; it is, and it is tested here)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")
        return torch.sparse_csr_tensor(crow, col, values, shape, check_invariants=False)


def sparse_chunks(x: sp.csr_matrix) -> list[tuple[int, int]]:
    """Row ranges costing at most PRODUCTS_PER_CHUNK (plus one row's cost), a row costing an upper bound on its
    products with x.T plus its histogram's BINS."""
    frequency = np.bincount(x.indices, minlength=x.shape[1])
    reach = np.concatenate([[0], np.cumsum(frequency[x.indices])])[x.indptr] + BINS * np.arange(x.shape[0] + 1)
    ends = np.searchsorted(reach, np.arange(1, reach[-1] // PRODUCTS_PER_CHUNK + 1) * PRODUCTS_PER_CHUNK)
    bounds = np.unique(np.concatenate([[0], ends.clip(1, x.shape[0]), [x.shape[0]]]))
    return list(zip(bounds[:-1], bounds[1:]))


def chunked_search(x: sp.csr_matrix, k: int, threshold: float | None, product: Callable, device: torch.device):
    """`(sim, idx)` of every row: `product(start, end)` gives the rows start:end of x @ x.T as (entries per row,
    columns, values) tensors on `device`, whose top k are kept chunk by chunk."""
    tops = [torch.full((0, k), EMPTY, device=device)]
    for start, end in sparse_chunks(x):
        tops.append(top_keys(*product(start, end), k, threshold))
    return decode(torch.cat(tops), None)


def sparse_neighbors(x, *, k: int, threshold: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Cosine neighbours of the L2-normalised rows of a scipy sparse matrix among themselves, as
    lib.neighbours.dense.neighbors returns them; only rows sharing a nonzero column are neighbours. On CUDA when it is
    available at run time (`torch_sparse_neighbors`), else by scipy's products on the CPU."""
    if default_device().type == "cuda":
        return torch_sparse_neighbors(x, k=k, threshold=threshold, device=default_device())
    x = sp.csr_matrix(x, dtype=np.float32)
    transposed = x.T.tocsr()

    def product(start: int, end: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        part = x[start:end] @ transposed
        return torch.from_numpy(np.diff(part.indptr)), torch.from_numpy(part.indices), torch.from_numpy(part.data)

    return chunked_search(x, k, threshold, product, torch.device("cpu"))


def device_csr(x: sp.csr_matrix, device: torch.device) -> torch.Tensor:
    """A float32 scipy CSR matrix as a torch sparse CSR tensor on `device`, with int32 indices."""
    crow, col = (torch.from_numpy(part.astype(np.int32)).to(device) for part in (x.indptr, x.indices))
    return csr_tensor(crow, col, torch.from_numpy(x.data).to(device), x.shape)


def torch_sparse_neighbors(x, *, k: int, threshold: float | None = None, device="cpu"):
    """`sparse_neighbors` with torch sparse CSR x CSR^T products on `device`. Runs on any device, but on the CPU only
    tests and benchmarks use it: there torch's MKL product is slower than scipy's and holds memory per chunk
    (docs/results.md, Exact neighbour search)."""
    x = sp.csr_matrix(x, dtype=np.float32)
    device = torch.device(device)
    transposed = device_csr(x.T.tocsr(), device)

    def product(start: int, end: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        part = device_csr(x[start:end], device) @ transposed
        return part.crow_indices().diff(), part.col_indices(), part.values()

    return chunked_search(x, k, threshold, product, device)
