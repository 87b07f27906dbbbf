"""Exact cosine nearest neighbours in chunks: memory bounded by the chunk, never an n x n matrix.

`neighbors` scans strips of similarities (a chunk of rows against all columns) in a low precision chosen by device
(`scan_dtype`: float16 on CUDA, bfloat16 on a CPU that multiplies it in hardware, else float32) and re-scores in
float32 every pair whose scanned value could, within a proven bound on the rounding error (`scan_error`), still reach
its row's top k or the threshold. A self-search computes each product once. `sparse_neighbors` does the same search
exactly on scipy sparse rows (TF-IDF): scipy's products on the CPU, torch sparse CSR products when CUDA is available
(`torch_sparse_neighbors`). Both paths give the same neighbours up to ties (sums of products in another order can
differ in the last float32 bit). Benchmarks: docs/results.md (tools/bench_knn.py).
"""

import warnings
from contextlib import contextmanager
from functools import cache
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from lib.devices import default_device

GROUP = 32
PRODUCTS_PER_CHUNK = 1 << 23
BINS = 1024
EMPTY = -0x7F800001 << 32  # the key of (-inf, column 2**32 - 1): below every pair, decodes to -inf
LOW_32_BITS = 0xFFFFFFFF


def as_tensor(x, device: torch.device | None = None) -> torch.Tensor:
    """`x` (numpy or torch, float32 or float16) as a contiguous float32 tensor on `device`, by default the tensor's
    own device, or `default_device()` for numpy."""
    if not isinstance(x, torch.Tensor):
        x = torch.from_numpy(np.ascontiguousarray(x))
        device = device or default_device()
    return x.detach().to(device=device or x.device, dtype=torch.float32).contiguous()


UNIT_ROUNDOFF = {torch.bfloat16: 2.0**-8, torch.float16: 2.0**-11}  # of the scan's low precisions


@cache
def cpu_flags() -> frozenset[str]:
    """This CPU's feature flags (Linux's /proc/cpuinfo; none known elsewhere)."""
    try:
        return frozenset(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return frozenset()


def scan_dtype(device: torch.device) -> torch.dtype:
    """The scan's precision: float16 on CUDA (tensor cores on every Kaggle GPU; T4 and P100 lack fast bfloat16),
    bfloat16 on a CPU with AMX or AVX512-BF16, float32 on other CPUs (they emulate bfloat16, slower than float32)."""
    if device.type == "cuda":
        return torch.float16
    if device.type == "cpu" and cpu_flags() & {"amx_bf16", "avx512_bf16"}:
        return torch.bfloat16
    return torch.float32


@contextmanager
def full_precision_sums():
    """CUDA float16 products accumulated in float32 throughout, as `scan_error` assumes (cuBLAS may otherwise round
    split sums to float16)."""
    matmul = torch.backends.cuda.matmul
    before = matmul.allow_fp16_reduced_precision_reduction
    matmul.allow_fp16_reduced_precision_reduction = False
    try:
        yield
    finally:
        matmul.allow_fp16_reduced_precision_reduction = before


def scan_copy(x: torch.Tensor, rows: int) -> tuple[torch.Tensor, float, float]:
    """The rows in the scan's precision padded with zero rows to a multiple of GROUP, the largest norm of a row or of
    its rounding, and the largest norm of a rounding error; `rows` at a time."""
    low = torch.zeros((-(-len(x) // GROUP) * GROUP, x.shape[1]), dtype=scan_dtype(x.device), device=x.device)
    norm = residual = 0.0
    for start in range(0, len(x), rows):
        part = x[start : start + rows]
        low[start : start + len(part)] = part
        rounded = low[start : start + len(part)].float()
        norm = max(norm, float(part.norm(dim=1).max()), float(rounded.norm(dim=1).max()))
        residual = max(residual, float((part - rounded).norm(dim=1).max()))
    return low, norm, residual


def scan_error(depth: int, norm: float, residual: float, dtype: torch.dtype) -> tuple[float, float]:
    """(A, rel) with |scanned - float32 similarity| <= A + rel |scanned|.

    The scan takes each strip of a self-search only from the diagonal on (x_i . x_j^T for j >= i) and uses its part
    right of the diagonal for the later rows too. Strips go from the last to the first, so that each row first meets
    the widest strip it will see. The scan is read in groups of GROUP columns: a group is looked into only when its
    maximum reaches the row's cutoff, which rises with the row's float32 k-th best.

    The bound. For rows a, b let a', b' be their roundings to the scan's precision and r_a = a - a', r_b = b - b'
    (measured: `scan_copy` takes the largest |r| of the actual rows, subnormal float16 values included). Then
        |a'.b' - a.b| = |a'.(b' - b) + (a' - a).b| <= |a'| |r_b| + |r_a| |b|         (Cauchy-Schwarz);
    the product accumulates in float32 over d terms (error <= gamma_d |a'| |b'|, gamma_d = d 2^-24 / (1 - d 2^-24);
    on CUDA float16 products are kept from reduced-precision reductions, `full_precision_sums`) and is rounded once to
    the scan's precision (error <= u |s~|, s~ the scanned value, u = 2^-8 for bfloat16's 8 significant bits, 2^-11
    for float16's 11). The float32 re-score s^ is itself within gamma_d |a| |b| of a.b. With N the largest norm of a
    row or its rounding and R the largest |r|:
        |s~ - s^| <= A + u |s~|,    A = 2 N R + 2 gamma_d N^2 + 2^-20 (the last term covers the cutoff arithmetic).
    A float32 scan (a CPU without fast bfloat16) may still be rounded by TF32 math modes on CUDA, so there R is taken
    as 2^-8 N, with no output rounding beyond gamma_d. A column is skipped when hi(s~) = s~ + A + rel |s~| is below the
    row's target: its float32 k-th best so far, lo(L) = L - A - rel |L| for L the k-th largest group maximum of a
    strip (k distinct columns reach it), and the threshold; none of these exceeds the final k-th best (or the
    threshold).
    """
    gamma = depth * 2.0**-24 / (1 - depth * 2.0**-24)
    if dtype in UNIT_ROUNDOFF:
        return 2 * norm * residual + 2 * gamma * norm**2 + 2.0**-20, UNIT_ROUNDOFF[dtype]
    return (2 * 2.0**-8 + 2.0**-16 + 3 * gamma) * norm**2 + 2.0**-20, 0.0


def order_keys(scan: torch.Tensor) -> torch.Tensor:
    """Keys ordered like the scanned values: 16-bit floats' bits read as int16, which keeps the order of values >= 0."""
    return scan.view(torch.int16) if scan.dtype in UNIT_ROUNDOFF else scan


def cutoff_keys(cutoff: torch.Tensor, scan: torch.dtype) -> torch.Tensor:
    """Keys (`order_keys` of a scan in precision `scan`) at or below each cutoff; the smallest key where the cutoff is
    not positive (int16 keys misorder negative values, -0.0 included)."""
    if scan not in UNIT_ROUNDOFF:
        return cutoff
    rounded = cutoff.to(scan)  # to nearest: one key lower where that went up (positive floats order like their bits)
    keys = rounded.view(torch.int16) - (rounded.float() > cutoff).to(torch.int16)
    return torch.where(cutoff > 0, keys, torch.iinfo(torch.int16).min)


def key_values(keys: torch.Tensor, scan: torch.dtype) -> torch.Tensor:
    """Float32 values of keys of a scan in precision `scan`; -inf for int16 keys of negative values, a valid lower
    bound where order is lost."""
    if scan not in UNIT_ROUNDOFF:
        return keys
    return torch.where(keys >= 0, keys.view(scan).float(), -torch.inf)


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


def csr_tensor(crow: torch.Tensor, col: torch.Tensor, values: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """A torch sparse CSR tensor (torch warns that the layout is in beta; it is, and it is tested here)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")
        return torch.sparse_csr_tensor(crow, col, values, shape, check_invariants=False)


def rescore(rows: torch.Tensor, cols: torch.Tensor, row: torch.Tensor, col: torch.Tensor) -> torch.Tensor:
    """Float32 similarities rows[row] . cols[col] of pairs sorted by row, then column, by a sampled matrix product."""
    starts = torch.searchsorted(row, torch.arange(len(rows) + 1, device=row.device))
    pattern = csr_tensor(starts, col, torch.zeros(len(row), device=row.device), (len(rows), len(cols)))
    return torch.sparse.sampled_addmm(pattern, rows, cols.T, beta=0.0).values()


def pad_rows(row: torch.Tensor, keys: torch.Tensor, rows: int) -> torch.Tensor:
    """Keys of pairs sorted by row as a (rows, most pairs in a row) matrix, EMPTY-padded."""
    place = torch.arange(len(row), device=row.device) - torch.searchsorted(row, row)
    padded = torch.full((rows, int(place.max()) + 1 if len(row) else 0), EMPTY, device=keys.device)
    padded[row, place] = keys
    return padded


class Search:
    """A strip-wise search of the rows of `a` among the rows of `b`: scan copies, error bound, each row's top k."""

    def __init__(self, a: torch.Tensor, b: torch.Tensor, k: int, threshold: float | None, block: int):
        """Scan copies (one when `b` is `a`), the error bound and an empty top k per row, on `a`'s device."""
        self.a, self.b, self.k, self.block = a, b, k, block
        self.threshold = threshold
        self.low_a, norm, residual = scan_copy(a, block)
        if b is a:
            self.low_b = self.low_a
        else:
            self.low_b, norm_b, residual_b = scan_copy(b, block)
            norm, residual = max(norm, norm_b), max(residual, residual_b)
        self.error, self.relative = scan_error(a.shape[1], norm, residual, self.low_a.dtype)
        self.top = torch.full((len(self.low_a), k), EMPTY, device=a.device)

    def scan(self, r0: int, c0: int) -> torch.Tensor:
        """Scanned similarities of a strip of rows of `a` against the rows of `b` from `c0` on, -inf at padding."""
        scan = self.low_a[r0 : r0 + self.block] @ self.low_b[c0:].T
        scan[len(self.a) - r0 :] = -torch.inf
        scan[:, len(self.b) - c0 :] = -torch.inf
        return scan

    def target(self, rows: slice, group_max: torch.Tensor, first: bool) -> torch.Tensor:
        """Lowest float32 similarity that may still enter each row's top k (module docstring); on a row's `first`
        scan, its k-th largest group maximum gives a floor."""
        kth = key_similarity(self.top[rows, -1])
        if self.threshold is not None:
            kth = kth.clamp_min(self.threshold)
        if first and self.k <= group_max.shape[1]:
            floor = key_values(group_max.topk(self.k, dim=1, sorted=False).values.amin(dim=1), self.low_a.dtype)
            kth = torch.maximum(kth, floor - self.error - self.relative * floor.abs())
        return kth

    def cutoff(self, target: torch.Tensor) -> torch.Tensor:
        """Lowest scanned value whose upper bound reaches the target."""
        shifted = target - self.error
        return torch.where(shifted >= 0, shifted / (1 + self.relative), shifted / (1 - self.relative))

    def take(self, scan: torch.Tensor, r0: int, c0: int, transposed: bool) -> None:
        """Merge the pairs of a scan into its rows' top k (rows are the scan's columns when `transposed`)."""
        keys = order_keys(scan)
        if transposed:
            r0, c0 = c0, r0
            group_max = keys.view(-1, GROUP, keys.shape[1]).amax(dim=1).T
            keys = keys.T
        else:
            group_max = keys.view(len(keys), -1, GROUP).amax(dim=2)
        rows = slice(r0, r0 + len(group_max))
        target = self.target(rows, group_max, first=not transposed)
        cutoff = cutoff_keys(self.cutoff(target), scan.dtype)
        row, group = (group_max >= cutoff[:, None]).nonzero(as_tuple=True)
        hit, offset = (keys.unflatten(1, (-1, GROUP))[row, group] >= cutoff[row, None]).nonzero(as_tuple=True)
        row, col = row[hit], group[hit] * GROUP + offset
        row_part, col_part = (self.b, self.a) if transposed else (self.a, self.b)
        row_part, col_part = row_part[rows], col_part[c0 : c0 + keys.shape[1]]
        if len(row_part) < len(keys) or len(col_part) < keys.shape[1]:
            valid = ((row < len(row_part)) & (col < len(col_part))).nonzero().squeeze(1)
            row, col = row[valid], col[valid]
        new = pad_rows(row, encode(rescore(row_part, col_part, row, col), col + c0), len(keys))
        if new.shape[1]:
            self.top[rows] = torch.cat([self.top[rows], new], dim=1).topk(self.k, dim=1).values

    def strip(self, r0: int, symmetric: bool) -> None:
        """Scan the rows of `a` from `r0` on (one strip) and take the scan; a self-search (`symmetric`) scans only
        from the diagonal on and takes the part right of the diagonal block for the later rows too."""
        c0 = r0 if symmetric else 0
        scan = self.scan(r0, c0)
        self.take(scan, r0, c0, transposed=False)
        if symmetric and scan.shape[1] > len(scan):
            self.take(scan[:, len(scan) :], r0, c0 + len(scan), transposed=True)

    def run(self, symmetric: bool) -> tuple[np.ndarray, np.ndarray]:
        """All strips, the last first (each row first meets its widest strip); `(sim, idx)` as numpy arrays."""
        for r0 in reversed(range(0, len(self.low_a), self.block)):
            self.strip(r0, symmetric)
        return decode(self.top[: len(self.a)], self.threshold)


def decode(top: torch.Tensor, threshold: float | None) -> tuple[np.ndarray, np.ndarray]:
    """`(sim, idx)` numpy arrays of each row's top keys; -inf / -1 for EMPTY keys and those under `threshold`."""
    sim = key_similarity(top)
    if threshold is not None:
        sim = sim.masked_fill(sim < threshold, -torch.inf)
    idx = torch.where(sim > -torch.inf, LOW_32_BITS - (top & LOW_32_BITS), -1)
    return sim.cpu().numpy(), idx.cpu().numpy()


def neighbors(x, y=None, *, k: int, threshold: float | None = None, chunk_size: int = 4096):
    """Cosine neighbours of L2-normalised rows of `x` in `y` (`x` itself when None): `(sim, idx)`, shape (len(x), k).

    Each row is sorted by float32 similarity, descending (ties: lower index first); slots past the neighbours that
    exist or reach `threshold` hold -inf / -1. `x`, `y`: numpy arrays or torch tensors, float32 or float16; the search
    runs on the tensor's device (CUDA when available for numpy). `chunk_size` rows per strip (rounded up to a multiple
    of 32) bound the memory: a strip holds chunk_size x len(y) scanned values (2 bytes each, 4 in float32).
    """
    a = as_tensor(x)
    b = a if y is None else as_tensor(y, a.device)
    with full_precision_sums():
        return Search(a, b, k, threshold, -(-chunk_size // GROUP) * GROUP).run(symmetric=y is None)


def sparse_chunks(x: sp.csr_matrix) -> list[tuple[int, int]]:
    """Row ranges costing at most PRODUCTS_PER_CHUNK (plus one row's cost), a row costing an upper bound on its
    products with x.T plus its histogram's BINS."""
    frequency = np.bincount(x.indices, minlength=x.shape[1])
    reach = np.concatenate([[0], np.cumsum(frequency[x.indices])])[x.indptr] + BINS * np.arange(x.shape[0] + 1)
    ends = np.searchsorted(reach, np.arange(1, reach[-1] // PRODUCTS_PER_CHUNK + 1) * PRODUCTS_PER_CHUNK)
    bounds = np.unique(np.concatenate([[0], ends.clip(1, x.shape[0]), [x.shape[0]]]))
    return list(zip(bounds[:-1], bounds[1:]))


def at_least(product: sp.csr_matrix, threshold: float) -> sp.csr_matrix:
    """The entries of a CSR matrix that reach `threshold`."""
    keep = product.data >= threshold
    indptr = np.concatenate([[0], np.cumsum(keep)])[product.indptr]
    return sp.csr_matrix((product.data[keep], product.indices[keep], indptr), shape=product.shape)


def histogram_keep(product: sp.csr_matrix, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(keep-mask, row) of a product's entries: those in or above the bin (BINS over [-1, 1]) of each row's k-th
    largest; `row` is given for the kept entries only."""
    rows, counts = product.shape[0], np.diff(product.indptr)
    scaled = np.multiply(product.data, BINS / 2, dtype=np.float32)
    scaled += BINS / 2
    bins = scaled.astype(np.int32)
    np.clip(bins, 0, BINS - 1, out=bins)
    bins += np.repeat(np.arange(rows, dtype=np.int32) * BINS, counts)
    at_or_above = np.cumsum(np.bincount(bins, minlength=rows * BINS).reshape(rows, BINS)[:, ::-1], axis=1)[:, ::-1]
    kth_bin = ((at_or_above >= k).sum(axis=1) - 1).clip(0) + np.arange(rows) * BINS
    keep = bins >= np.repeat(kth_bin.astype(np.int32), counts)
    return keep, bins[keep] // BINS


def ragged_top_k(row, col, sim, rows: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top k of (row, col, sim) entries per row, best first, ties by lower column; -inf / -1 past the end."""
    order = np.lexsort((col, -sim, row))
    row, col, sim = row[order], col[order], sim[order]
    rank = np.arange(len(row)) - np.searchsorted(row, row)
    top = rank < k
    out_sim = np.full((rows, k), -np.inf, dtype=np.float32)
    out_idx = np.full((rows, k), -1, dtype=np.int64)
    out_sim[row[top], rank[top]], out_idx[row[top], rank[top]] = sim[top], col[top]
    return out_sim, out_idx


def sparse_neighbors(x, *, k: int, threshold: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Cosine neighbours of the L2-normalised rows of a scipy sparse matrix among themselves, as `neighbors` returns
    them; only rows sharing a nonzero column are neighbours. Products are computed a bounded number at a time, on
    CUDA when it is available at run time (`torch_sparse_neighbors`), else by scipy on the CPU."""
    if default_device().type == "cuda":
        return torch_sparse_neighbors(x, k=k, threshold=threshold, device=default_device())
    x = sp.csr_matrix(x, dtype=np.float32)
    transposed = x.T.tocsr()
    parts = []
    for start, end in sparse_chunks(x):
        product = x[start:end] @ transposed
        if threshold is not None:
            product = at_least(product, threshold)
        keep, row = histogram_keep(product, k)
        parts.append(ragged_top_k(row, product.indices[keep], product.data[keep], end - start, k))
    if not parts:
        return np.zeros((0, k), dtype=np.float32), np.zeros((0, k), dtype=np.int64)
    return tuple(np.concatenate(part) for part in zip(*parts))


def device_csr(x: sp.csr_matrix, device: torch.device) -> torch.Tensor:
    """A float32 scipy CSR matrix as a torch sparse CSR tensor on `device`, with int32 indices."""
    crow, col = (torch.from_numpy(part.astype(np.int32)).to(device) for part in (x.indptr, x.indices))
    return csr_tensor(crow, col, torch.from_numpy(x.data).to(device), x.shape)


def top_keys(product: torch.Tensor, k: int, threshold: float | None) -> torch.Tensor:
    """Each row's k largest keys (`encode`) among the entries of a sparse CSR product that reach `threshold`, EMPTY
    past them: entries below the bin (BINS over [-1, 1]) of their row's k-th largest go first, the rest are sorted."""
    crow, col, values = product.crow_indices(), product.col_indices(), product.values()
    rows = len(crow) - 1
    row = torch.repeat_interleave(torch.arange(rows, dtype=torch.int32, device=values.device), crow.diff())
    if threshold is not None:
        passing = values >= threshold
        row, col, values = row[passing], col[passing], values[passing]
    bins = (values * (BINS / 2) + BINS / 2).int().clamp_(0, BINS - 1)  # int32: sparse_chunks bounds rows * BINS
    counts = torch.bincount(row * BINS + bins, minlength=rows * BINS).view(rows, BINS)
    kth_bin = ((counts.flip(1).cumsum(1).flip(1) >= k).sum(1, dtype=torch.int32) - 1).clamp_min(0)
    kept = (bins >= kth_bin[row]).nonzero().squeeze(1)
    row, keys = row[kept], encode(values[kept], col[kept].long())
    order = keys.argsort(descending=True, stable=True)
    order = order[row[order].argsort(stable=True)]
    row, keys = row[order], keys[order]
    rank = torch.arange(len(row), device=row.device) - torch.searchsorted(row, row)
    first = (rank < k).nonzero().squeeze(1)
    top = torch.full((rows, k), EMPTY, device=row.device)
    top[row[first], rank[first]] = keys[first]
    return top


def torch_sparse_neighbors(x, *, k: int, threshold: float | None = None, device="cpu"):
    """`sparse_neighbors` with torch sparse CSR x CSR^T products on `device`, chunk by chunk (`sparse_chunks` bounds
    each chunk's products and histogram); the top k of each chunk is selected there too. Runs on any device, but on
    the CPU only tests and benchmarks use it: there torch 2.14's MKL product is slower than scipy's and kept about
    50 MB per chunk of 7 million products that it never freed (measured at 70,000 titles)."""
    x = sp.csr_matrix(x, dtype=np.float32)
    device = torch.device(device)
    transposed = device_csr(x.T.tocsr(), device)
    tops = [torch.full((0, k), EMPTY, device=device)]
    for start, end in sparse_chunks(x):
        tops.append(top_keys(device_csr(x[start:end], device) @ transposed, k, threshold))
    return decode(torch.cat(tops), None)
