"""Title and image features of candidate pairs (i, j) for the second stage's pair classifier.

What depends on one posting is computed once (`title_tables`, `phash_table`); the pair features gather it for a chunk
of pairs (rows, cols) at a time, vectorised: set overlaps are row-wise products of binary posting x item matrices, the
edit distance a bit-parallel DP. Every feature is symmetric (candidates hold (i, j) and (j, i)), and a ratio whose
denominator is 0 is NaN. Call `title_pair_features` on chunks (100,000 pairs, say): one call on all of them is slower
and its memory grows with them. The features and their cost: docs/optimiser.md, *The second stage*.
"""

import re
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from lib.data.text import TOKEN, code_tokens, quantities
from lib.matching.pairs import amount_conflicts

# Characters of each title the edit distance compares: one bit of a uint64 for each.
EDIT_LENGTH = 64
NUMBER = re.compile(r"\d+(?:\.\d+)?")
PHASH = re.compile(r"[0-9a-fA-F]{16}")

TITLE_FEATURES = (
    "min_tokens",  # tokens (lib.data.text.TOKEN matches, repeats included) of the title with fewer
    "max_tokens",
    "tokens_ratio",  # min_tokens / max_tokens
    "min_chars",  # characters of the shorter normalised title
    "max_chars",
    "chars_ratio",
    "token_jaccard",  # distinct tokens shared / distinct tokens of either
    "token_overlap_coefficient",  # distinct tokens shared / distinct tokens of the title with fewer
    "trigram_jaccard",  # of the character 3-grams of the whole titles, spaces included
    "normalised_edit_distance",  # Levenshtein distance of the first EDIT_LENGTH characters / the longer of those
    "number_jaccard",  # of the numbers as written (digits, a decimal point), also those inside codes (a52s: 52)
    "numbers_disjoint",  # both titles state numbers and share none
    "unit_conflict",  # amounts of one kind differ (lib.data.text.quantities_differ)
    "code_jaccard",  # of the model-code tokens (lib.data.text.code_tokens)
    "codes_disjoint",  # both titles have codes and share none
    "identical_title",  # the same non-empty normalised title
)


@dataclass
class TitleTables:
    """What the pair features of n normalised titles need of each posting, computed once."""

    token_counts: np.ndarray
    char_counts: np.ndarray
    tokens: sp.csr_matrix
    trigrams: sp.csr_matrix
    numbers: sp.csr_matrix
    codes: sp.csr_matrix
    title_ids: np.ndarray  # equal for identical titles, -1 for an empty one
    characters: np.ndarray  # code points of the first EDIT_LENGTH characters (`code_points`)
    amounts: list[dict]  # lib.data.text.quantities of each title


@dataclass
class PhashTable:
    """The 64-bit perceptual hashes of n postings' images as integers, and which postings have a valid one."""

    hashes: np.ndarray
    valid: np.ndarray


def binary_matrix(rows: np.ndarray, columns: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    """Boolean CSR matrix, True at each (row, column); repeats are summed by the conversion, and True + True is True."""
    return sp.csr_matrix((np.ones(len(rows), dtype=bool), (rows, columns)), shape=shape)


def item_matrix(items: Sequence[Sequence[Hashable]]) -> sp.csr_matrix:
    """Boolean posting x item matrix of each posting's distinct items."""
    vocabulary: dict = {}
    columns = [vocabulary.setdefault(item, len(vocabulary)) for own in items for item in own]
    rows = np.repeat(np.arange(len(items)), [len(own) for own in items])
    return binary_matrix(rows, np.array(columns, dtype=np.int64), (len(items), len(vocabulary)))


def trigram_matrix(titles: Sequence[str]) -> sp.csr_matrix:
    """Boolean posting x character 3-gram matrix of the whole titles, spaces included; a 3-gram is the integer of its
    three 21-bit code points, computed for all titles at once."""
    lengths = np.array([len(title) for title in titles], dtype=np.int64)
    points = np.frombuffer("".join(titles).encode("utf-32-le"), dtype="<u4").astype(np.int64)
    grams = (points[:-2] << 42) | (points[1:-1] << 21) | points[2:]
    owners = np.repeat(np.arange(len(titles)), lengths)[: len(grams)]
    inside = np.arange(len(grams)) + 3 <= np.cumsum(lengths)[owners]
    distinct, columns = np.unique(grams[inside], return_inverse=True)
    return binary_matrix(owners[inside], columns, (len(titles), len(distinct)))


def title_ids(titles: Sequence[str]) -> np.ndarray:
    """One id per distinct title, -1 for an empty one."""
    ids: dict = {}
    return np.array([ids.setdefault(title, len(ids)) if title else -1 for title in titles], dtype=np.int64)


def code_points(titles: Sequence[str]) -> np.ndarray:
    """(n, EDIT_LENGTH) uint32 code points of each title's first EDIT_LENGTH characters, zero-padded."""
    padded = "".join(title[:EDIT_LENGTH].ljust(EDIT_LENGTH, "\0") for title in titles)
    return np.frombuffer(padded.encode("utf-32-le"), dtype="<u4").reshape(len(titles), EDIT_LENGTH).astype(np.uint32)


def title_tables(titles: Sequence[str]) -> TitleTables:
    """Each posting's counts, token / trigram / number / code sets, title id, first characters and amounts."""
    tokens = [TOKEN.findall(title) for title in titles]
    return TitleTables(
        token_counts=np.array([len(own) for own in tokens], dtype=np.int64),
        char_counts=np.array([len(title) for title in titles], dtype=np.int64),
        tokens=item_matrix(tokens),
        trigrams=trigram_matrix(titles),
        numbers=item_matrix([NUMBER.findall(title) for title in titles]),
        codes=item_matrix([code_tokens(title) for title in titles]),
        title_ids=title_ids(titles),
        characters=code_points(titles),
        amounts=[quantities(title) for title in titles],
    )


def ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator as float32, NaN where the denominator is 0."""
    out = np.full(len(numerator), np.nan, dtype=np.float32)
    return np.divide(numerator, denominator, out=out, where=denominator > 0, casting="unsafe")


def shared_items(matrix: sp.csr_matrix, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """How many items the postings of each pair share: row-wise dot products of a binary matrix's rows."""
    return np.asarray(matrix[rows].multiply(matrix[cols]).sum(axis=1)).ravel()


def set_features(matrix: sp.csr_matrix, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, ...]:
    """Items shared by each pair, the Jaccard of the pair's item sets and the size of the smaller set."""
    sizes = np.diff(matrix.indptr)
    shared = shared_items(matrix, rows, cols)
    return shared, ratio(shared, sizes[rows] + sizes[cols] - shared), np.minimum(sizes[rows], sizes[cols])


def bit_masks(matches: np.ndarray) -> np.ndarray:
    """uint64 of each row of a (P, 64) bool array: bit k set where column k is True."""
    return np.packbits(matches, axis=1, bitorder="little").view("<u8").ravel().astype(np.uint64)


def edit_distances(first: np.ndarray, first_lengths: np.ndarray, second: np.ndarray, second_lengths: np.ndarray):
    """Levenshtein distances of P pairs of padded code-point rows (P, 64) of the given lengths (at most 64).

    Myers' bit-parallel DP in Hyyrö's form for the global distance: a column j of the DP table D over `first` is
    held as bit vectors of its steps down, D[k + 1][j] - D[k][j] = +1 (`plus_down`, Pv) or -1 (`minus_down`, Mv) in
    bit k, and advanced by one character of `second` for every pair at once; `plus_across` and `minus_across` (Ph,
    Mh) are the steps D[k + 1][j + 1] - D[k + 1][j], and `distance` follows D[length][j] through them. Bit k depends
    only on bits 0..k, so padding past `first`'s length leaves the last row alone; characters past `second`'s length
    are not counted.
    """
    plus_down, minus_down = np.full(len(first), np.uint64(2**64 - 1)), np.zeros(len(first), dtype=np.uint64)
    distance = first_lengths.astype(np.int64)
    last_row = np.uint64(1) << (np.maximum(first_lengths, 1) - 1).astype(np.uint64)
    for position in range(int(second_lengths.max(initial=0))):
        matches = bit_masks(first == second[:, position, None])
        x_down = matches | minus_down
        x_across = (((matches & plus_down) + plus_down) ^ plus_down) | matches
        plus_across = minus_down | ~(x_across | plus_down)
        minus_across = plus_down & x_across
        counted = position < second_lengths
        distance += counted & ((plus_across & last_row) != 0)
        distance -= counted & ((minus_across & last_row) != 0)
        plus_across = (plus_across << np.uint64(1)) | np.uint64(1)
        minus_across = minus_across << np.uint64(1)
        plus_down = minus_across | ~(x_down | plus_across)
        minus_down = plus_across & x_down
    return np.where(first_lengths == 0, second_lengths, distance)


def title_pair_features(tables: TitleTables, rows: np.ndarray, cols: np.ndarray) -> dict[str, np.ndarray]:
    """The `TITLE_FEATURES` of pairs (rows[k], cols[k]) of the postings of `tables`, float32, in that order."""
    features = {}
    for name, counts in [("tokens", tables.token_counts), ("chars", tables.char_counts)]:
        low, high = np.minimum(counts[rows], counts[cols]), np.maximum(counts[rows], counts[cols])
        features |= {f"min_{name}": low, f"max_{name}": high, f"{name}_ratio": ratio(low, high)}
    shared, features["token_jaccard"], fewer = set_features(tables.tokens, rows, cols)
    features["token_overlap_coefficient"] = ratio(shared, fewer)
    features["trigram_jaccard"] = set_features(tables.trigrams, rows, cols)[1]
    for name, matrix in [("number", tables.numbers), ("code", tables.codes)]:
        shared, features[f"{name}_jaccard"], fewer = set_features(matrix, rows, cols)
        features[f"{name}s_disjoint"] = (fewer > 0) & (shared == 0)
    lengths = np.minimum(tables.char_counts, EDIT_LENGTH)
    distance = edit_distances(tables.characters[rows], lengths[rows], tables.characters[cols], lengths[cols])
    features["normalised_edit_distance"] = ratio(distance, np.maximum(lengths[rows], lengths[cols]))
    features["unit_conflict"] = amount_conflicts(tables.amounts, rows, cols)
    ids = tables.title_ids
    features["identical_title"] = (ids[rows] == ids[cols]) & (ids[rows] >= 0)
    return {name: features[name].astype(np.float32) for name in TITLE_FEATURES}


def phash_table(phashes: Sequence) -> PhashTable:
    """Parse image_phash values (16 hex digits); anything else (empty, NaN, malformed) is invalid."""
    valid = [isinstance(phash, str) and PHASH.fullmatch(phash) is not None for phash in phashes]
    hashes = [int(phash, 16) if ok else 0 for phash, ok in zip(phashes, valid)]
    return PhashTable(np.array(hashes, dtype=np.uint64), np.array(valid, dtype=bool))


def phash_distance(table: PhashTable, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Hamming distance (float32, 0-64) of the pairs' image phashes, NaN where either is invalid."""
    distance = np.bitwise_count(table.hashes[rows] ^ table.hashes[cols]).astype(np.float32)
    return np.where(table.valid[rows] & table.valid[cols], distance, np.float32(np.nan))
