"""lib.second_stage.pair_features: each component's pair features against naive per-pair computations."""

import numpy as np
import pytest

from lib.data.text import normalise_title, tfidf_vectors
from lib.neighbours.dense import neighbors
from lib.neighbours.sparse import sparse_neighbors
from lib.second_stage import pair_features
from lib.second_stage.pair_features import EPSILON, TOP, PairFeatures
from tools.bench.synthetic import synthetic_embeddings, synthetic_labels

N, K = 60, 12


def postings():
    """60 postings: a dense and a TF-IDF component with their neighbours, titles and phashes."""
    labels = synthetic_labels(N, seed=3)
    dense = synthetic_embeddings(labels, 2.0, 16, 1)
    dense /= np.linalg.norm(dense, axis=1, keepdims=True)
    words = np.array(["tas", "kulit", "wanita", "sepatu", "anak", "botol", "air", "500 ml", "250 ml", "hitam"])
    rng = np.random.default_rng(0)
    titles = [normalise_title(" ".join(words[(label + rng.integers(0, 3, 3)) % 10])) for label in labels]
    tfidf = tfidf_vectors(titles, titles)
    vectors = {"image": dense, "tfidf": tfidf}
    found = {"image": neighbors(dense, k=K), "tfidf": sparse_neighbors(tfidf, k=K)}
    phashes = [f"{rng.integers(0, 2**63):016x}" for _ in range(N)]
    return vectors, found, titles, phashes


def naive_others(sim_row, idx_row, row):
    """A posting's neighbours other than itself, in order: [(col, sim)]."""
    return [(int(col), float(s)) for s, col in zip(sim_row, idx_row) if col >= 0 and col != row]


def naive_density(found, statistic):
    """Each posting's statistic of its other neighbours' similarities, standardised over the postings."""
    sim, idx = found
    values = np.array([statistic([s for _, s in naive_others(sim[r], idx[r], r)]) for r in range(N)])
    return (values - values.mean()) / values.std()


def test_component_features_equal_per_pair_computations():
    vectors, found, titles, phashes = postings()
    features = PairFeatures(vectors, found, titles, phashes)
    rng = np.random.default_rng(1)
    rows, cols = rng.integers(0, N, 300), rng.integers(0, N, 300)
    rows, cols = rows[rows != cols], cols[rows != cols]
    matrix = features.chunk(rows, cols)
    assert matrix.shape == (len(rows), len(features.names)) and matrix.dtype == np.float32
    for name, x in vectors.items():
        dense = x.toarray() if hasattr(x, "toarray") else x
        sim, idx = found[name]
        column = {feature: features.names.index(feature) for feature in pair_features.component_feature_names(name)}
        densities = {
            "kth": naive_density(found[name], lambda s: s[-1]),
            "mean10": naive_density(found[name], lambda s: np.mean(s[:10])),
            "std10": naive_density(found[name], lambda s: np.std(s[:10])),
        }
        for i, (row, col) in enumerate(zip(rows, cols)):
            similarity = float(dense[row] @ dense[col])
            assert matrix[i, column[f"{name}.similarity"]] == pytest.approx(similarity, abs=1e-5)
            for side, (a, b) in {"rank": (row, col), "reverse_rank": (col, row)}.items():
                others = [c for c, _ in naive_others(sim[a], idx[a], a)]
                rank = others.index(b) + 1 if b in others else K + 1
                assert matrix[i, column[f"{name}.{side}"]] == rank
            for top in TOP:
                for side, posting in (("row", row), ("col", col)):
                    own = [s for _, s in naive_others(sim[posting], idx[posting], posting)][:top]
                    expected = (similarity - np.mean(own)) / (np.std(own) + EPSILON)
                    assert matrix[i, column[f"{name}.vs_{side}_top{top}"]] == pytest.approx(
                        expected, rel=1e-3, abs=1e-3
                    )
            for density, values in densities.items():
                assert matrix[i, column[f"{name}.row_{density}"]] == pytest.approx(values[row], abs=1e-4)
                assert matrix[i, column[f"{name}.col_{density}"]] == pytest.approx(values[col], abs=1e-4)


def test_chunks_of_pairs_give_the_rows_of_the_whole():
    vectors, found, titles, phashes = postings()
    features = PairFeatures(vectors, found, titles, phashes)
    rows, cols = np.divmod(np.arange(N * N), N)
    keep = rows != cols
    whole = features.chunk(rows[keep], cols[keep])
    parts = [features.chunk(rows[keep][s : s + 500], cols[keep][s : s + 500]) for s in range(0, keep.sum(), 500)]
    assert np.array_equal(np.concatenate(parts), whole, equal_nan=True)


def test_components_without_neighbours_are_refused():
    vectors, found, titles, phashes = postings()
    del found["tfidf"]
    with pytest.raises(ValueError, match=r"components \['tfidf'\] lack vectors or neighbours"):
        PairFeatures(vectors, found, titles, phashes)


def test_the_image_title_similarity_of_an_image_text_model_equals_a_naive_loop():
    vectors, found, titles, phashes = postings()
    rng = np.random.default_rng(2)
    image, text = (x / np.linalg.norm(x, axis=1, keepdims=True) for x in rng.normal(size=(2, N, 8)).astype(np.float32))
    plain = PairFeatures(vectors, found, titles, phashes)
    features = PairFeatures(vectors, found, titles, phashes, {"clip": (image, text)})
    components = [f for name in vectors for f in pair_features.component_feature_names(name)]
    assert features.names == components + ["clip.image_text"] + plain.names[len(components) :]
    rows, cols = rng.integers(0, N, 200), rng.integers(0, N, 200)
    matrix = features.chunk(rows, cols)
    column = features.names.index(pair_features.image_text_feature_name("clip"))
    for i, (row, col) in enumerate(zip(rows, cols)):
        there = sum(float(image[row, d]) * float(text[col, d]) for d in range(8))
        back = sum(float(image[col, d]) * float(text[row, d]) for d in range(8))
        assert matrix[i, column] == pytest.approx((there + back) / 2, abs=1e-5)
    others = [number for number, name in enumerate(features.names) if name != "clip.image_text"]
    np.testing.assert_array_equal(matrix[:, others], plain.chunk(rows, cols))
