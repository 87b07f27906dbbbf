"""Reading and validating competition postings (train.csv / test.csv)."""

from pathlib import Path

import pandas as pd

POSTING_COLUMNS = ["posting_id", "image", "image_phash", "title"]


def read_postings(path: Path, labelled: bool = False) -> pd.DataFrame:
    """Postings of one CSV with its columns checked; `labelled` also requires an integer `label_group`."""
    required = POSTING_COLUMNS + (["label_group"] if labelled else [])
    frame = pd.read_csv(path, dtype={"posting_id": str, "image": str, "image_phash": str, "title": str})
    missing = [column for column in required if column not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}; expected {required} as in the competition's files")
    for column in ["posting_id", "image"]:
        empty = frame.index[frame[column].isna()]
        if len(empty):
            raise ValueError(f"{path}: line {empty[0] + 2} has an empty {column}; every posting needs one")
    duplicated = frame.index[frame.posting_id.duplicated()]
    if len(duplicated):
        row = duplicated[0]
        raise ValueError(f"{path}: line {row + 2} repeats posting_id {frame.posting_id[row]}; ids must be unique")
    if labelled and not pd.api.types.is_integer_dtype(frame.label_group):
        bad = frame.index[pd.to_numeric(frame.label_group, errors="coerce").isna()][0]
        raise ValueError(f"{path}: line {bad + 2} has label_group {frame.label_group[bad]!r}; it must be an integer")
    frame["title"] = frame.title.fillna("")
    frame["image_phash"] = frame.image_phash.fillna("")
    return frame[required].reset_index(drop=True)
