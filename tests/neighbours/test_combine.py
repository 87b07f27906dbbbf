"""lib.neighbours.combine: combined embeddings whose dot products are weighted means of cosines."""

import numpy as np
import pytest

from lib.neighbours.combine import combine


def test_combined_dot_products_are_weighted_means_of_cosines():
    rng = np.random.default_rng(0)
    members = [rng.normal(size=(20, 8)) * 3, rng.normal(size=(20, 5)), rng.normal(size=(20, 3)).astype(np.float16)]
    weights = [0.5, 1.5, 2.0]
    combined = combine(members, weights)
    assert combined.dtype == np.float32 and combined.shape == (20, 16)
    assert np.allclose(np.linalg.norm(combined, axis=1), 1, atol=1e-6)
    for a in range(20):
        for b in range(20):
            exact = [x.astype(np.float64) for x in members]
            cosines = [np.dot(x[a], x[b]) / np.linalg.norm(x[a]) / np.linalg.norm(x[b]) for x in exact]
            expected = sum(w * cosine for w, cosine in zip(weights, cosines)) / sum(weights)
            assert float(combined[a] @ combined[b]) == pytest.approx(expected, abs=1e-5)


def test_equal_weights_are_the_concatenation_of_normalised_members():
    rng = np.random.default_rng(1)
    first, second = rng.normal(size=(6, 4)), rng.normal(size=(6, 2))
    plain = np.hstack(
        [first / np.linalg.norm(first, axis=1)[:, None], second / np.linalg.norm(second, axis=1)[:, None]]
    )
    assert np.allclose(combine([first, second], [2.0, 2.0]), plain / np.sqrt(2), atol=1e-6)
    assert np.allclose(combine([first], [0.3]), first / np.linalg.norm(first, axis=1)[:, None], atol=1e-6)


def test_combine_refuses_what_cannot_be_combined():
    x = np.ones((3, 2))
    with pytest.raises(ValueError, match="2 embedding sets for 1 weights"):
        combine([x, x], [1.0])
    with pytest.raises(ValueError, match="must all be positive"):
        combine([x, x], [1.0, 0.0])
    with pytest.raises(ValueError, match=r"members have \[3, 4\] rows"):
        combine([x, np.ones((4, 2))], [1.0, 1.0])
