"""Writing and checking submission.csv (`posting_id,matches`)."""

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

MAX_MATCHES = 50  # the competition caps group sizes at 50, so more matches can only lower F1


def write_submission(path: Path, posting_ids: Sequence[str], matches: Sequence[Sequence[str]]) -> None:
    """Write one row per posting with its matches space-separated."""
    frame = pd.DataFrame({"posting_id": list(posting_ids), "matches": [" ".join(row) for row in matches]})
    frame.to_csv(path, index=False)


def validate_submission(path: Path, test_ids: Sequence[str]) -> None:
    """Raise ValueError naming the line when the file is not a valid submission for these test postings."""
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    if list(frame.columns) != ["posting_id", "matches"]:
        raise ValueError(f"{path}: columns are {list(frame.columns)}; write exactly posting_id,matches")
    known = set(test_ids)
    repeated = set(frame.posting_id[frame.posting_id.duplicated()])
    missing = known - set(frame.posting_id)
    if missing:
        raise ValueError(f"{path}: {len(missing)} test postings have no row, e.g. {sorted(missing)[0]}")
    for line, (posting_id, matches) in enumerate(zip(frame.posting_id, frame.matches), start=2):
        ids = matches.split()
        problem = (
            "is not a test posting"
            if posting_id not in known
            else "appears twice"
            if posting_id in repeated
            else "does not match itself"
            if posting_id not in ids
            else f"has {len(ids)} matches, more than {MAX_MATCHES}"
            if len(ids) > MAX_MATCHES
            else "matches an unknown posting id"
            if not set(ids) <= known
            else "repeats a match"
            if len(set(ids)) != len(ids)
            else None
        )
        if problem:
            raise ValueError(f"{path}: line {line}, posting {posting_id} {problem}")
