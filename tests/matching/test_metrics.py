import random

import pytest

from lib.matching.metrics import mean_f1, row_f1, true_matches


def naive_f1(predicted, actual):
    """F1 from precision and recall, the textbook way."""
    hits = sum(1 for p in set(predicted) if p in set(actual))
    if hits == 0:
        return 0.0
    precision, recall = hits / len(set(predicted)), hits / len(set(actual))
    return 2 * precision * recall / (precision + recall)


def test_row_f1_matches_precision_recall_definition():
    rng = random.Random(0)
    for _ in range(500):
        universe = [f"p{i}" for i in range(12)]
        predicted = rng.sample(universe, rng.randint(1, 12))
        actual = rng.sample(universe, rng.randint(1, 12))
        assert row_f1(predicted, actual) == pytest.approx(naive_f1(predicted, actual))


def test_mean_f1_is_the_mean_of_rows():
    predicted = [{"a", "b"}, {"c"}, ["d", "e", "f"]]
    actual = [{"a"}, {"c"}, {"x"}]
    expected = (2 * 1 / 3 + 1.0 + 0.0) / 3
    assert mean_f1(predicted, actual) == pytest.approx(expected)


def test_mean_f1_counts_duplicates_once():
    assert mean_f1([["a", "a", "b"]], [["a", "b"]]) == 1.0


def test_mean_f1_refuses_unequal_lengths():
    with pytest.raises(ValueError, match="2 predicted rows but 1 actual"):
        mean_f1([{"a"}, {"b"}], [{"a"}])


def test_true_matches_are_whole_groups_including_self():
    ids = ["a", "b", "c", "d"]
    groups = [7, 9, 7, 7]
    assert true_matches(ids, groups) == [{"a", "c", "d"}, {"b"}, {"a", "c", "d"}, {"a", "c", "d"}]
