import numpy as np

from lib.neighbours.expansion import blend


def naive_blend(x, k, alpha):
    """One stage with explicit loops: the k most similar rows weighted by similarity**alpha."""
    out = []
    for row in x:
        sims = [(float(row @ other), j) for j, other in enumerate(x)]
        top = sorted(sims, reverse=True)[:k]
        total = sum(max(s, 0) ** alpha * x[j] for s, j in top)
        out.append(total / np.linalg.norm(total))
    return np.array(out)


def unit_rows(n, d, seed):
    x = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_one_stage_matches_naive_weighted_sum():
    x = unit_rows(30, 8, 0)
    np.testing.assert_allclose(blend(x, k=4, alpha=3.0), naive_blend(x, 4, 3.0), atol=1e-5)


def test_stages_repeat_the_blend_and_keep_unit_norm():
    x = unit_rows(25, 6, 1)
    twice = blend(x, k=3, stages=2)
    np.testing.assert_allclose(twice, naive_blend(naive_blend(x, 3, 1.0), 3, 1.0), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(twice, axis=1), 1, atol=1e-5)


def test_blending_pulls_noisy_copies_together():
    rng = np.random.default_rng(2)
    centres = unit_rows(10, 32, 3)
    x = np.repeat(centres, 3, axis=0) + rng.normal(scale=0.25, size=(30, 32)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    blended = blend(x, k=3)
    same = lambda e: np.mean([e[3 * g] @ e[3 * g + 1] for g in range(10)])  # noqa: E731
    assert same(blended) > same(x)
