"""Exact cosine nearest neighbours of dense rows in chunks: memory bounded by the chunk, never an n x n matrix.

`neighbors` scans strips of similarities (a chunk of rows against all columns) in a low precision chosen by device
(`scan_dtype`: float16 on CUDA, bfloat16 on a CPU that multiplies it in hardware, else float32) and re-scores in
float32 every pair whose scanned value could, within a proven bound on the rounding error (`scan_error`), still reach
its row's top k or the threshold. A self-search computes each product once. Each row's top k is held as
lib.neighbours.top_k keys.
"""

from contextlib import contextmanager
from functools import cache
from pathlib import Path

import numpy as np
import torch

from lib.devices import default_device
from lib.neighbours.sparse import csr_tensor
from lib.neighbours.top_k import EMPTY, decode, encode, key_similarity

GROUP = 32


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
        """Lowest float32 similarity that may still enter each row's top k (`scan_error`); on a row's `first`
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
