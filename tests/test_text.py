import math

import numpy as np

from lib.knn import sparse_neighbors
from lib.text import (
    decode_escaped_bytes,
    normalise_title,
    quantities,
    quantities_differ,
    tfidf_vectors,
)


def test_escaped_bytes_become_characters():
    assert decode_escaped_bytes("Kaos \\xe2\\x9d\\xa4 Cinta") == "Kaos \u2764 Cinta"
    assert decode_escaped_bytes("no escapes here") == "no escapes here"


def test_normalise_splits_numbers_from_units_and_unifies_spelling():
    assert normalise_title("PROMO Susu 400gr") == "promo susu 400 g"
    assert normalise_title("Shampoo 1 L   murah") == "shampoo 1 l murah"
    assert normalise_title("Minyak 1,5Ltr") == "minyak 1.5 l"
    assert normalise_title("Kaos XL 12 pcs") == "kaos xl 12 pcs"
    assert normalise_title("Semangka") == "semangka"


def naive_tfidf_cosine(titles):
    """Smoothed idf, raw term counts, l2 rows, as scikit-learn defines them, with plain loops."""
    docs = [t.split() for t in titles]
    vocab = sorted({w for d in docs for w in d})
    n = len(docs)
    idf = {w: math.log((1 + n) / (1 + sum(w in d for d in docs))) + 1 for w in vocab}
    vectors = []
    for d in docs:
        v = np.array([d.count(w) * idf[w] for w in vocab])
        vectors.append(v / np.linalg.norm(v))
    return np.array([[float(a @ b) for b in vectors] for a in vectors])


def test_tfidf_vectors_and_sparse_neighbors_match_a_naive_cosine():
    titles = ["susu anmum 400 g", "susu anmum 200 g", "kaos polos xl", "kaos polos l", "susu bear brand", "kaos xl"]
    sim, idx = sparse_neighbors(tfidf_vectors(titles), k=3, threshold=0.2)
    reference = naive_tfidf_cosine(titles)
    for row in range(len(titles)):
        kept = idx[row][idx[row] >= 0]
        expected = [j for j in np.argsort(-reference[row], kind="stable")[:3] if reference[row, j] >= 0.2]
        assert sorted(kept) == sorted(expected)
        np.testing.assert_allclose(sim[row][: len(kept)], reference[row, kept], atol=1e-5)
    assert idx[0, 0] == 0


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
