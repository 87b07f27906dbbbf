"""Benchmark exact neighbour search, `lib.neighbours.dense` and `.sparse`, against faiss-cpu `IndexFlatIP` and
scikit-learn; print Markdown tables (`make bench`).

Usage: python -m tools.bench.knn [--scan] [--sparse] [--char]   (no option: every table; options: only those)

The tables: dense self-search of random and clustered embeddings; the dense scan forced to each CPU precision; sparse
TF-IDF search by scipy and by torch; character n-gram TF-IDF against scikit-learn. Each measurement runs in a fresh
process. The data and how time, memory and agreement are measured: docs/results.md, "Exact neighbour search".
"""

import argparse
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from lib.data.competition import HIDDEN_TEST_ROWS

SIZES = (10_000, 35_000, HIDDEN_TEST_ROWS)
SCAN_ROWS = 35_000
SCANS = ("bfloat16", "float32")
RUNS = {HIDDEN_TEST_ROWS: 2}
KINDS = ("random", "clustered")
WIDTH = 512
K = 50
TITLES = HIDDEN_TEST_ROWS
VOCABULARY = 30_000
SAMPLED_ROWS = 1000
SPARSE = ("scipy", "torch")
SKLEARN_ROWS = 512
TIE_TOLERANCE = 1e-5


def embeddings(n: int, kind: str) -> np.ndarray:
    """n x WIDTH float32 unit rows: Gaussian, or clustered around shared centres with a common direction."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, WIDTH), dtype=np.float32)
    if kind == "clustered":
        sizes = rng.integers(1, 51, size=n)
        group = np.repeat(np.arange(n), sizes)[:n]
        centres = rng.standard_normal((group[-1] + 1, WIDTH), dtype=np.float32)
        common = rng.standard_normal(WIDTH).astype(np.float32)
        x = centres[rng.permutation(group)] + 0.6 * x + 0.8 * common
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def titles(n: int) -> list[str]:
    """n synthetic titles: groups of 1-5 listings share 4-8 core words and add 1-5 words of their own."""
    rng = np.random.default_rng(0)
    cdf = np.cumsum(1.0 / (np.arange(VOCABULARY) + 11.0))
    cdf /= cdf[-1]

    def words(count: int) -> list[int]:
        return list(np.minimum(np.searchsorted(cdf, rng.random(count)), VOCABULARY - 1))

    out = []
    while len(out) < n:
        core = words(rng.integers(4, 9))
        for _ in range(rng.integers(1, 6)):
            kept = [word for word in core if rng.random() > 0.2] + words(rng.integers(1, 6))
            out.append(" ".join(f"w{word}" for word in rng.permutation(kept)))
    return out[:n]


def tfidf(texts: list[str]) -> sp.csr_matrix:
    """L2-normalised float32 TF-IDF rows of word unigrams, as `lib.data.text` builds them."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(token_pattern=r"(?u)\b\w+\b")
    return vectorizer.fit_transform(texts).astype(np.float32).tocsr()


def sklearn_neighbors(x: sp.csr_matrix) -> np.ndarray:
    """Each row's K nearest rows by scikit-learn's cosine_similarity, SKLEARN_ROWS rows at a time, top K by
    argpartition (unordered); -1 where the similarity is not positive (no shared term)."""
    from sklearn.metrics.pairwise import cosine_similarity

    parts = []
    for start in range(0, x.shape[0], SKLEARN_ROWS):
        similarity = cosine_similarity(x[start : start + SKLEARN_ROWS], x)
        top = np.argpartition(-similarity, K - 1, axis=1)[:, :K]
        parts.append(np.where(np.take_along_axis(similarity, top, axis=1) > 0, top, -1))
    return np.concatenate(parts)


def memory_kb(field: str) -> int:
    """A field of /proc/self/status in kB (VmRSS, VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}: this benchmark needs Linux")


def search(method: str, data_path: str):
    """Load the input and return a function that runs `method` on all of it or on its first rows."""
    if method in (*SPARSE, "sklearn"):
        from lib.neighbours import sparse

        x = sp.load_npz(data_path).tocsr()
        if method == "sklearn":
            return lambda rows=None: sklearn_neighbors(x if rows is None else x[:rows])
        if method == "scipy":
            return lambda rows=None: sparse.sparse_neighbors(x if rows is None else x[:rows], k=K)[1]
        return lambda rows=None: sparse.torch_sparse_neighbors(x if rows is None else x[:rows], k=K, device="cpu")[1]
    x = np.load(data_path)
    if method.startswith("ours"):
        import torch

        from lib.neighbours import dense

        if method != "ours":  # ours-<dtype>: the scan forced to that precision (this process only)
            scan = getattr(torch, method.removeprefix("ours-"))
            dense.scan_dtype = lambda device: scan
        return lambda rows=None: dense.neighbors(x if rows is None else x[:rows], k=K)[1]
    import faiss

    def flat_ip(rows=None):
        part = x if rows is None else x[:rows]
        index = faiss.IndexFlatIP(part.shape[1])
        index.add(part)
        return index.search(part, K)[1]

    return flat_ip


def child(method: str, data_path: str, out_path: str) -> tuple[float, float]:
    """In a fresh process: warm up, then time one full search; (seconds, peak MB above the input)."""
    run = search(method, data_path)
    run(1000)
    Path("/proc/self/clear_refs").write_text("5")
    before = memory_kb("VmRSS")
    start = time.perf_counter()
    idx = run()
    seconds = time.perf_counter() - start
    peak = (memory_kb("VmHWM") - before) / 1024
    np.save(out_path, idx)
    return seconds, peak


def measure(method: str, data_path: Path, folder: Path) -> tuple[float, float, np.ndarray]:
    """Run `child` in a fresh spawned process; (seconds, peak MB, neighbour indices)."""
    out = folder / f"{method}-idx.npy"
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        seconds, peak = pool.submit(child, method, str(data_path), str(out)).result()
    return seconds, peak, np.load(out)


def summarise(results: list[tuple[float, float, np.ndarray]]) -> tuple[float, float, np.ndarray]:
    """The fastest time, the largest peak and the last indices of repeated measurements."""
    return min(result[0] for result in results), max(result[1] for result in results), results[-1][2]


def agreement(sims_of, ours: np.ndarray, reference: np.ndarray) -> float:
    """Share of rows whose neighbour sets agree, ties aside; `sims_of(row, cols)` gives float64 similarities."""
    agreed = 0
    for row, (a, b) in enumerate(zip(ours, reference)):
        a, b = a[a >= 0], b[b >= 0]
        if set(a) == set(b):
            agreed += 1
        elif len(a) == len(b):
            agreed += np.allclose(np.sort(sims_of(row, a)), np.sort(sims_of(row, b)), rtol=0, atol=TIE_TOLERANCE)
    return agreed / len(ours)


def alternating(first: str, second: str, path: Path, folder: Path, n: int):
    """Two methods measured on the input at `path` of n rows, alternating RUNS.get(n, 1) times; each one's summary."""
    runs = [(measure(first, path, folder), measure(second, path, folder)) for _ in range(RUNS.get(n, 1))]
    return summarise([run[0] for run in runs]), summarise([run[1] for run in runs])


def dense_row(folder: Path, n: int, kind: str) -> str:
    """One Markdown table row: ours against faiss on n rows of `kind`, alternating when measured more than once."""
    x = embeddings(n, kind)
    path = folder / "x.npy"
    np.save(path, x)
    (ours_s, ours_mb, ours), (faiss_s, faiss_mb, reference) = alternating("ours", "faiss", path, folder, n)
    x64 = x.astype(np.float64)
    agree = agreement(lambda row, cols: x64[cols] @ x64[row], ours, reference)
    cells = (f"{n:,}", kind, f"{ours_s:.1f}", f"{faiss_s:.1f}", f"{ours_s / faiss_s:.2f}", f"{ours_mb:.0f}")
    return "| " + " | ".join((*cells, f"{faiss_mb:.0f}", f"{agree:.4f}")) + " |"


def sparse_row(folder: Path) -> str:
    """One Markdown table row: the scipy and torch sparse paths on the CPU on TITLES synthetic titles, alternating
    twice, each checked on sampled rows."""
    x = tfidf(titles(TITLES))
    path = folder / "titles.npz"
    sp.save_npz(path, x)
    runs = [[measure(method, path, folder) for method in SPARSE] for _ in range(2)]
    (scipy_s, scipy_mb, scipy_idx), (torch_s, torch_mb, torch_idx) = (summarise(each) for each in zip(*runs))
    rows = np.random.default_rng(0).choice(TITLES, SAMPLED_ROWS, replace=False)
    dense = (x[rows].astype(np.float64) @ x.T.astype(np.float64)).toarray()
    reference = np.argsort(-dense, axis=1, kind="stable")[:, :K]
    reference = np.where(np.take_along_axis(dense, reference, axis=1) > 0, reference, -1)
    agree = [agreement(lambda row, cols: dense[row, cols], idx[rows], reference) for idx in (scipy_idx, torch_idx)]
    cells = (f"{TITLES:,} titles ({x.shape[1]:,} words, {x.nnz:,} nonzeros)", f"{scipy_s:.1f}", f"{torch_s:.1f}")
    cells += (f"{torch_s / scipy_s:.2f}", f"{scipy_mb:.0f}", f"{torch_mb:.0f}", f"{agree[0]:.4f}", f"{agree[1]:.4f}")
    return "| " + " | ".join(cells) + " |"


def sparse_table(folder: Path) -> None:
    """Print the sparse table."""
    print(f"\nTF-IDF self-search, k={K}, on the CPU, best of 2 alternating runs; agreement on {SAMPLED_ROWS} rows.\n")
    columns = ["scipy (s)", "torch CPU (s)", "torch / scipy", "scipy peak MB", "torch peak MB"]
    print("| " + " | ".join(["input", *columns, "same sets scipy", "same sets torch"]) + " |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    print(sparse_row(folder), flush=True)


def repeats() -> str:
    """How often each size is measured, for a table's caption."""
    return "; ".join(f"n={n:,}: best of {count} alternating runs" for n, count in RUNS.items())


def char_row(folder: Path, n: int) -> str:
    """One Markdown table row: `sparse_neighbors` against scikit-learn on the char TF-IDF of n marketplace titles,
    alternating when measured more than once, their neighbour sets compared on sampled rows."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    from lib.data import text
    from tools.bench.synthetic import marketplace_titles

    texts = marketplace_titles(n)
    start = time.perf_counter()
    x = text.tfidf_vectors(texts, analyzer="char_wb")
    vectorise_s = time.perf_counter() - start
    ngrams = len(TfidfVectorizer(**text.ANALYZERS["char_wb"]).fit(texts).vocabulary_)
    path = folder / "char.npz"
    sp.save_npz(path, x)
    (ours_s, ours_mb, ours), (sklearn_s, sklearn_mb, reference) = alternating("scipy", "sklearn", path, folder, n)
    rows = np.random.default_rng(0).choice(n, SAMPLED_ROWS, replace=False)
    x64 = x.astype(np.float64)
    agree = agreement(lambda row, cols: (x64[cols] @ x64[rows[row]].T).toarray().ravel(), ours[rows], reference[rows])
    empty = int((np.diff(x.indptr) == 0).sum())
    cells = (f"{n:,}", f"{ngrams:,} / {ngrams - x.shape[1]:,}", f"{empty:,}", f"{x.nnz:,}", f"{vectorise_s:.1f}")
    cells += (f"{ours_s:.1f}", f"{sklearn_s:.1f}", f"{ours_s / sklearn_s:.2f}", f"{ours_mb:.0f}", f"{sklearn_mb:.0f}")
    return "| " + " | ".join((*cells, f"{agree:.4f}")) + " |"


def char_table(folder: Path) -> None:
    """Print the character n-gram table."""
    from lib.data.text import PRODUCT_BUDGET

    print(f"\nChar n-gram TF-IDF self-search, k={K}, PRODUCT_BUDGET={PRODUCT_BUDGET:.0e}; {repeats()}; agreement of")
    print(f"ours with scikit-learn on {SAMPLED_ROWS} rows.\n")
    columns = ["n-grams / dropped", "empty rows", "nonzeros", "vectorise (s)", "ours (s)", "sklearn (s)"]
    columns += ["ours / sklearn", "ours peak MB", "sklearn peak MB", "same sets"]
    print("| " + " | ".join(["n", *columns]) + " |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in SIZES:
        print(char_row(folder, n), flush=True)


def dense_table(folder: Path) -> None:
    """Print the dense table."""
    cores = f"{os.cpu_count()} cores"
    print(f"Self-search, k={K}, {WIDTH}-d float32, {cores}; faiss: IndexFlatIP add + search; {repeats()}.\n")
    print("| n | data | ours (s) | faiss (s) | ours / faiss | ours peak MB | faiss peak MB | same sets |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    for n in SIZES:
        for kind in KINDS:
            print(dense_row(folder, n, kind), flush=True)


def scan_row(folder: Path, kind: str) -> str:
    """One Markdown table row: ours with each forced scan precision and faiss on SCAN_ROWS rows of `kind`."""
    x = embeddings(SCAN_ROWS, kind)
    path = folder / "x.npy"
    np.save(path, x)
    results = {method: measure(method, path, folder) for method in [*(f"ours-{scan}" for scan in SCANS), "faiss"]}
    x64 = x.astype(np.float64)
    agree = [
        agreement(lambda row, cols: x64[cols] @ x64[row], results[f"ours-{scan}"][2], results["faiss"][2])
        for scan in SCANS
    ]
    (low_s, *_), (full_s, *_), (faiss_s, *_) = results.values()
    cells = (kind, f"{low_s:.1f}", f"{full_s:.1f}", f"{faiss_s:.1f}", f"{low_s / full_s:.2f}")
    return "| " + " | ".join((*cells, " / ".join(f"{a:.4f}" for a in agree))) + " |"


def scan_table(folder: Path) -> None:
    """Print the scan precision table, with the CPU's flags and the run-time choice."""
    import torch

    from lib.neighbours import dense

    flags = sorted(dense.cpu_flags() & {"amx_bf16", "avx512_bf16", "avx512f", "avx2"})
    chosen = str(dense.scan_dtype(torch.device("cpu"))).removeprefix("torch.")
    print(f"\nScan precision: self-search, k={K}, {WIDTH}-d, n={SCAN_ROWS:,}, {os.cpu_count()} cores; this CPU has")
    print(f"{', '.join(flags) or 'none of AMX, AVX512-BF16, AVX-512, AVX2'}, so the run-time choice is {chosen}.\n")
    print(
        "| data | bfloat16 scan (s) | float32 scan (s) | faiss (s) | bfloat16 / float32 | same sets (each vs faiss) |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for kind in KINDS:
        print(scan_row(folder, kind), flush=True)


def main() -> None:
    """Print the dense, scan precision, sparse and character n-gram tables (`--scan`, `--sparse` or `--char`: that
    one only)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scan", action="store_true", help="only the scan precision table")
    parser.add_argument("--sparse", action="store_true", help="only the sparse table")
    parser.add_argument("--char", action="store_true", help="only the character n-gram table")
    args = parser.parse_args()
    tables = {"scan": scan_table, "sparse": sparse_table, "char": char_table}
    chosen = [table for flag, table in tables.items() if getattr(args, flag)] or [dense_table, *tables.values()]
    with tempfile.TemporaryDirectory() as tmp:
        for table in chosen:
            table(Path(tmp))


if __name__ == "__main__":
    main()
