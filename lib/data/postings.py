"""Reading and validating competition postings (train.csv / test.csv).

Every cell is read as text: a title "NaN", "NA" or "None" is that title, and only an empty cell is empty. Errors name
the file, the line and the fix.
"""

from pathlib import Path

import numpy as np
import pandas as pd

POSTING_COLUMNS = ["posting_id", "image", "image_phash", "title"]
ENCODING = "utf-8"  # the competition's files


def undecodable(path: Path) -> str:
    """Where a file stops being ENCODING and how to convert it (for a file pandas could not decode)."""
    data = Path(path).read_bytes()
    try:
        data.decode(ENCODING)
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        found = f"byte 0x{data[error.start]:02x} on line {line} is not {ENCODING}"
    else:
        found = f"it could not be read as {ENCODING}"
    return (
        f"{path}: read as {ENCODING}, the encoding of the competition's files, but {found}; convert it, e.g. "
        f"`iconv -f latin1 -t utf-8 {path} -o fixed.csv` for a spreadsheet's latin-1 (or save it as 'CSV UTF-8')"
    )


def integer_labels(path: Path, labels: pd.Series) -> np.ndarray:
    """The label_group column as int64; ValueError naming the first line whose value is not an integer."""
    whole = labels.str.strip().str.fullmatch(r"[+-]?\d+")
    if not whole.all():
        row = int(np.flatnonzero(~whole.to_numpy())[0])
        raise ValueError(
            f"{path}: line {row + 2} has label_group {labels.iloc[row]!r}; it must be an integer (the id of the "
            "posting's product group, as in the competition's train.csv)"
        )
    return labels.astype(np.int64).to_numpy()


def read_postings(path: Path, labelled: bool = False) -> pd.DataFrame:
    """Postings of one CSV with its columns checked; `labelled` also requires an integer `label_group`."""
    required = POSTING_COLUMNS + (["label_group"] if labelled else [])
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding=ENCODING)
    except UnicodeDecodeError:
        raise ValueError(undecodable(path)) from None
    missing = [column for column in required if column not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}; expected {required} as in the competition's files")
    for column in ["posting_id", "image"]:
        empty = frame.index[frame[column].str.strip() == ""]
        if len(empty):
            raise ValueError(f"{path}: line {empty[0] + 2} has an empty {column}; every posting needs one")
    duplicated = frame.index[frame.posting_id.duplicated()]
    if len(duplicated):
        row = duplicated[0]
        raise ValueError(f"{path}: line {row + 2} repeats posting_id {frame.posting_id[row]}; ids must be unique")
    if labelled:
        frame["label_group"] = integer_labels(path, frame.label_group)
    return frame[required].reset_index(drop=True)
