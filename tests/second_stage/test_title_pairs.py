import math

import numpy as np
import pytest

from lib.data.text import TOKEN, code_tokens, normalise_title, quantities, quantities_differ
from lib.second_stage import title_pairs as tp

SHOP_TITLES = [
    "Susu UHT Ultra Milk Coklat 500ml",
    "ULTRA MILK susu uht coklat 250 ml",
    "Samsung Galaxy A52s 8/128GB Garansi Resmi",
    "samsung galaxy a72 8/128gb garansi resmi",
    "Samsung Galaxy A52s 8/128GB Garansi Resmi",
    "Kaos Polos Cotton Combed 30s Size XL",
    "kaos polos cotton combed 30s size L",
    "",
    "Paket Hemat ❤ Sabun Mandi Lifebuoy 3 pcs x 85gr",
    "Lampu LED Philips 10 watt putih putih",
    "Tas Ransel Laptop Pria Wanita Anti Air Bahan Kanvas Premium Tebal Muat 15.6 inch Model Terbaru 2021",
]
WORDS = ["susu", "kaos", "500", "ml", "250", "1.5", "kg", "l", "xl", "a52s", "a72", "8/128gb", "murah", "❤", "30s"]


def random_titles(rng, count):
    """Titles of 0-20 words from a small vocabulary, so that random pairs share words, numbers and codes."""
    return [normalise_title(" ".join(rng.choice(WORDS, size=rng.integers(0, 21)))) for _ in range(count)]


def naive_ratio(numerator, denominator):
    return numerator / denominator if denominator else math.nan


def naive_jaccard(first: set, second: set):
    return naive_ratio(len(first & second), len(first | second))


def levenshtein(first: str, second: str) -> int:
    """The textbook DP, one row at a time."""
    previous = list(range(len(second) + 1))
    for i, a in enumerate(first, 1):
        current = [i]
        for j, b in enumerate(second, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a != b)))
        previous = current
    return previous[-1]


def naive_edit_ratio(first: str, second: str):
    """Levenshtein distance of the first EDIT_LENGTH characters over the longer of those."""
    first, second = first[: tp.EDIT_LENGTH], second[: tp.EDIT_LENGTH]
    return naive_ratio(levenshtein(first, second), max(len(first), len(second)))


def trigrams(title: str) -> set:
    return {title[k : k + 3] for k in range(len(title) - 2)}


def naive_features(a: str, b: str) -> dict:
    """Every title feature of one pair, computed with Python sets and loops."""
    tokens_a, tokens_b = TOKEN.findall(a), TOKEN.findall(b)
    set_a, set_b = set(tokens_a), set(tokens_b)
    numbers_a, numbers_b = set(tp.NUMBER.findall(a)), set(tp.NUMBER.findall(b))
    codes_a, codes_b = set(code_tokens(a)), set(code_tokens(b))
    return {
        "min_tokens": min(len(tokens_a), len(tokens_b)),
        "max_tokens": max(len(tokens_a), len(tokens_b)),
        "tokens_ratio": naive_ratio(min(len(tokens_a), len(tokens_b)), max(len(tokens_a), len(tokens_b))),
        "min_chars": min(len(a), len(b)),
        "max_chars": max(len(a), len(b)),
        "chars_ratio": naive_ratio(min(len(a), len(b)), max(len(a), len(b))),
        "token_jaccard": naive_jaccard(set_a, set_b),
        "token_overlap_coefficient": naive_ratio(len(set_a & set_b), min(len(set_a), len(set_b))),
        "trigram_jaccard": naive_jaccard(trigrams(a), trigrams(b)),
        "normalised_edit_distance": naive_edit_ratio(a, b),
        "number_jaccard": naive_jaccard(numbers_a, numbers_b),
        "numbers_disjoint": bool(numbers_a and numbers_b and not numbers_a & numbers_b),
        "unit_conflict": quantities_differ(quantities(a), quantities(b)),
        "code_jaccard": naive_jaccard(codes_a, codes_b),
        "codes_disjoint": bool(codes_a and codes_b and not codes_a & codes_b),
        "identical_title": a == b and a != "",
    }


@pytest.fixture(scope="module")
def pairs_of_titles():
    """Shop titles, every ordered pair of them (self-pairs included), and 200 random pairs of random titles."""
    rng = np.random.default_rng(0)
    titles = [normalise_title(title) for title in SHOP_TITLES] + random_titles(rng, 60)
    shop = len(SHOP_TITLES)
    rows = np.concatenate([np.repeat(np.arange(shop), shop), rng.integers(shop, len(titles), 200)])
    cols = np.concatenate([np.tile(np.arange(shop), shop), rng.integers(shop, len(titles), 200)])
    return titles, rows, cols


def test_every_feature_equals_a_naive_computation(pairs_of_titles):
    titles, rows, cols = pairs_of_titles
    features = tp.title_pair_features(tp.title_tables(titles), rows, cols)
    assert list(features) == list(tp.TITLE_FEATURES)
    assert all(values.dtype == np.float32 and values.shape == rows.shape for values in features.values())
    expected = [naive_features(titles[i], titles[j]) for i, j in zip(rows, cols)]
    for name in tp.TITLE_FEATURES:
        reference = np.array([pair[name] for pair in expected], dtype=np.float64)
        np.testing.assert_allclose(features[name], reference, rtol=1e-6, equal_nan=True, err_msg=name)


def test_the_shop_titles_cases(pairs_of_titles):
    """The cases the hand-written titles are for: units, codes, identical and empty titles."""
    titles, rows, cols = pairs_of_titles
    features = tp.title_pair_features(tp.title_tables(titles), rows, cols)

    def feature(name, i, j):
        return features[name][(rows == i) & (cols == j)][0]

    assert feature("unit_conflict", 0, 1) == 1 and feature("number_jaccard", 0, 1) == 0
    assert feature("unit_conflict", 5, 6) == 1  # size xl vs l
    assert feature("codes_disjoint", 2, 3) == 0 and 0 < feature("code_jaccard", 2, 3) < 1  # a52s vs a72, 8/128gb
    assert feature("identical_title", 2, 4) == 1 and feature("normalised_edit_distance", 2, 4) == 0
    assert feature("identical_title", 7, 7) == 0 and np.isnan(feature("token_jaccard", 7, 7))
    assert feature("max_chars", 10, 10) > tp.EDIT_LENGTH


def test_chunks_give_the_features_of_all_pairs_at_once(pairs_of_titles):
    titles, rows, cols = pairs_of_titles
    tables = tp.title_tables(titles)
    whole = tp.title_pair_features(tables, rows, cols)
    chunks = [tp.title_pair_features(tables, rows[k : k + 37], cols[k : k + 37]) for k in range(0, len(rows), 37)]
    for name in tp.TITLE_FEATURES:
        np.testing.assert_array_equal(np.concatenate([chunk[name] for chunk in chunks]), whole[name], err_msg=name)


def test_edit_distance_equals_the_naive_dp_on_strings_of_few_letters():
    """Many edits of every kind: strings of 0-70 characters over four characters (one beyond Latin-1), cut at 64."""
    rng = np.random.default_rng(1)
    strings = ["".join(rng.choice(list("ab ❤"), size=rng.integers(0, 71))) for _ in range(100)]
    tables = tp.title_tables(strings)
    rows, cols = rng.integers(0, 100, 300), rng.integers(0, 100, 300)
    features = tp.title_pair_features(tables, rows, cols)
    reference = [naive_edit_ratio(strings[i], strings[j]) for i, j in zip(rows, cols)]
    np.testing.assert_allclose(features["normalised_edit_distance"], reference, rtol=1e-6, equal_nan=True)


def test_phash_distance_counts_differing_bits_and_is_nan_for_invalid_phashes():
    rng = np.random.default_rng(2)
    values = [int(value) for value in rng.integers(0, 2**64, size=20, dtype=np.uint64)]
    phashes = [f"{value:016x}" for value in values] + ["", "x", "0123456789abcdeg", "0123456789abcde", math.nan]
    rows, cols = rng.integers(0, len(phashes), 300), rng.integers(0, len(phashes), 300)
    distance = tp.phash_distance(tp.phash_table(phashes), rows, cols)
    valid = len(values)
    expected = [bin(values[i] ^ values[j]).count("1") if max(i, j) < valid else math.nan for i, j in zip(rows, cols)]
    assert distance.dtype == np.float32
    np.testing.assert_array_equal(distance, np.array(expected, dtype=np.float32))
    assert tp.phash_distance(tp.phash_table(["FFFFFFFFFFFFFFFF", "0000000000000000"]), [0], [1])[0] == 64
