"""The competition metric: mean over postings of the F1 between predicted and true match sets."""

from collections import defaultdict
from collections.abc import Collection, Sequence


def row_f1(predicted: Collection, actual: Collection) -> float:
    """F1 of one posting's predicted matches against its true matches."""
    predicted, actual = set(predicted), set(actual)
    if not predicted and not actual:
        return 1.0
    return 2 * len(predicted & actual) / (len(predicted) + len(actual))


def mean_f1(predicted: Sequence[Collection], actual: Sequence[Collection]) -> float:
    """Mean row-wise F1 of two equal-length sequences of posting-id collections."""
    if len(predicted) != len(actual):
        raise ValueError(
            f"mean_f1: {len(predicted)} predicted rows but {len(actual)} actual rows; pass one per posting"
        )
    if not actual:
        raise ValueError("mean_f1: no rows to score")
    return sum(row_f1(p, a) for p, a in zip(predicted, actual)) / len(actual)


def true_matches(posting_ids: Sequence[str], label_groups: Sequence) -> list[set[str]]:
    """Each posting's true matches: every posting of its label group, itself included."""
    members = defaultdict(set)
    for posting_id, group in zip(posting_ids, label_groups):
        members[group].add(posting_id)
    return [members[group] for group in label_groups]
