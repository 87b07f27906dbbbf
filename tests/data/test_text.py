import math
from collections import Counter

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

from lib.data import text
from lib.data.text import (
    code_tokens,
    decode_escaped_bytes,
    normalise_title,
    quantities,
    quantities_differ,
    tfidf_vectors,
)
from lib.neighbours.sparse import sparse_neighbors


def test_escaped_bytes_become_characters():
    assert decode_escaped_bytes("Kaos \\xe2\\x9d\\xa4 Cinta") == "Kaos \u2764 Cinta"
    assert decode_escaped_bytes("no escapes here") == "no escapes here"


def test_normalise_splits_numbers_from_units_and_unifies_spelling():
    assert normalise_title("PROMO Susu 400gr") == "promo susu 400 g"
    assert normalise_title("Shampoo 1 L   murah") == "shampoo 1 l murah"
    assert normalise_title("Minyak 1,5Ltr") == "minyak 1.5 l"
    assert normalise_title("Kaos XL 12 pcs") == "kaos xl 12 pcs"
    assert normalise_title("Semangka") == "semangka"
    assert normalise_title("Speaker K2M a12gr (400gr)") == "speaker k2m a12gr ( 400 g )", "codes keep their digits"


def naive_tfidf(docs, terms=None):
    """Smoothed idf, raw term counts, l2 rows (zero rows stay zero), as scikit-learn defines them, with plain loops;
    `docs` are lists of terms, the columns `terms` (default: every term of the docs), sorted."""
    terms = sorted({t for d in docs for t in d} if terms is None else terms)
    n = len(docs)
    idf = {t: math.log((1 + n) / (1 + sum(t in d for d in docs))) + 1 for t in terms}
    vectors = []
    for d in docs:
        v = np.array([d.count(t) * idf[t] for t in terms])
        norm = np.linalg.norm(v)
        vectors.append(v / norm if norm else v)
    return np.array(vectors)


def assert_neighbours_of(vectors, sim, idx, k, threshold=0.0):
    """`(sim, idx)` of sparse_neighbors are each row's top k by a cosine computed pair by pair, among rows sharing a
    term (a positive product) that reach `threshold`."""
    cosine = np.array([[float(a @ b) for b in vectors] for a in vectors])
    for row in range(len(vectors)):
        kept = idx[row][idx[row] >= 0]
        reach = [
            j for j in np.argsort(-cosine[row], kind="stable") if cosine[row, j] > 0 and cosine[row, j] >= threshold
        ]
        assert sorted(kept) == sorted(reach[:k])
        np.testing.assert_allclose(sim[row][: len(kept)], cosine[row, kept], atol=1e-5)


def test_tfidf_vectors_and_sparse_neighbors_match_a_naive_cosine():
    titles = ["susu anmum 400 g", "susu anmum 200 g", "kaos polos xl", "kaos polos l", "susu bear brand", "kaos xl"]
    sim, idx = sparse_neighbors(tfidf_vectors(titles), k=3, threshold=0.2)
    assert_neighbours_of(naive_tfidf([t.split() for t in titles]), sim, idx, 3, 0.2)
    assert idx[0, 0] == 0


CHAR_TITLES = ["susu anmum 400 g", "susu anmum 200 g", "susu", "susu bear brand", "kaos polos xl", "kaos xl", "sony"]


def char_ngrams(title):
    """The character 2-4-grams of a title within its words, as the char_wb analyzer cuts them."""
    return TfidfVectorizer(**text.ANALYZERS["char_wb"]).build_analyzer()(title)


def test_char_tfidf_on_small_data_is_the_plain_char_tfidf():
    plain = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), dtype=np.float32).fit_transform(CHAR_TITLES)
    ours = tfidf_vectors(CHAR_TITLES, analyzer="char_wb")
    assert ours.dtype == np.float32
    np.testing.assert_array_equal(ours.toarray(), plain.toarray())


def test_the_budget_drops_the_most_frequent_ngrams_and_renormalises(monkeypatch):
    docs = [char_ngrams(title) for title in CHAR_TITLES]
    frequency = Counter(g for d in docs for g in set(d))
    budget = 300
    monkeypatch.setattr(text, "PRODUCT_BUDGET", budget)
    cap = max(frequency.values())
    while sum(f * f for f in frequency.values() if f <= cap) > budget:
        cap -= 1
    kept = [g for g, f in frequency.items() if f <= cap]
    assert 0 < len(kept) < len(frequency) and {frequency[g] for g in frequency if g not in kept} == {4, 5}
    expected = naive_tfidf(docs, kept)
    x = tfidf_vectors(CHAR_TITLES, analyzer="char_wb")
    np.testing.assert_allclose(x.toarray(), expected, atol=1e-6)
    assert not expected[2].any(), "every n-gram of 'susu' is frequent: a zero row"
    sim, idx = sparse_neighbors(x, k=3)
    assert_neighbours_of(expected, sim, idx, 3)
    assert (idx[2] == -1).all() and 2 not in idx
    np.testing.assert_array_equal(tfidf_vectors(CHAR_TITLES[:3], CHAR_TITLES, "char_wb").toarray(), x[:3].toarray())


def test_code_tokens_of_marketplace_titles():
    def codes(title):
        return code_tokens(normalise_title(title))

    assert codes("Samsung Galaxy A52 8/128GB") == ["a52", "8/128gb"]
    assert codes("SONY PSLX350H") == ["pslx350h"]
    assert codes("Anmum Lacta 400gr") == ["400g"]
    assert codes("Minyak 1,5Ltr (isi 2)") == ["1.5l", "2"]
    assert codes("Kaos Polos Hitam - Murah!") == []
    assert codes("Kaos \\xe2\\x9d\\xa4 Cinta 2pcs") == ["2pcs"], "escaped bytes are characters, not codes"
    assert codes("Kalender Meja 2022") == ["2022"]


def test_code_tfidf_and_its_neighbours_match_a_naive_cosine():
    titles = ["Samsung Galaxy A52 8/128GB", "SAMSUNG A52 8/128 GB", "Samsung A72 8/128GB", "Sony PSLX350H", "Kaos"]
    titles = [normalise_title(title) for title in titles]
    expected = naive_tfidf([code_tokens(title) for title in titles])
    x = tfidf_vectors(titles, analyzer="code")
    np.testing.assert_allclose(x.toarray(), expected, atol=1e-6)
    sim, idx = sparse_neighbors(x, k=3)
    assert_neighbours_of(expected, sim, idx, 3)
    assert (idx[4] == -1).all() and 4 not in idx, "a title without codes is a zero row: no neighbour, no match"


def test_titles_without_any_term_give_zero_rows():
    x = tfidf_vectors(["kaos polos", "kaos hitam"], corpus=["kaos polos", "kaos hitam", "baju"], analyzer="code")
    assert x.shape == (2, 0) and x.nnz == 0
    sim, idx = sparse_neighbors(x, k=2)
    assert (idx == -1).all() and (sim == -np.inf).all()
    assert tfidf_vectors(["", " "]).shape == (2, 0)


def test_quantities_in_base_units_and_sizes():
    assert quantities(normalise_title("Susu 1 L 2 pcs")) == {"volume": {1000.0}, "count": {2.0}}
    assert quantities(normalise_title("Kaos polos size XL")) == {"size": {"xl"}}
    assert quantities(normalise_title("Sabun mandi")) == {}


def test_quantities_differ_only_on_a_shared_kind():
    def differ(a, b):
        return quantities_differ(quantities(normalise_title(a)), quantities(normalise_title(b)))

    assert differ("Anmum Lacta 400gr", "Anmum Lacta 200gr")
    assert not differ("Susu 1L", "susu 1000 ml")
    assert not differ("Susu 1L", "susu 2 pcs")
    assert differ("Kaos XL", "Kaos L")
