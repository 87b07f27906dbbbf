"""Out-of-fold (OOF) embeddings of training runs, and the check that several runs embed the same postings.

A run is a training kernel's output folder (lib.training.train): oof_embeddings.npz holds the validation postings' ids,
their label groups and one float16 array per model output ("concat", "image", "text"); metrics.json its config and CV.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lib.data import paths

OOF = "oof_embeddings.npz"
METRICS = "metrics.json"
MODEL = "model.pt"
FIELDS = ("posting_id", "label_group")


@dataclass
class Run:
    """One training run's OOF postings and embeddings (float32) and its best-epoch CV."""

    name: str
    folder: Path
    posting_ids: np.ndarray
    labels: np.ndarray
    outputs: dict[str, np.ndarray]
    metrics: dict

    @property
    def split(self) -> str:
        """The seed and folds that chose its validation postings, in words."""
        config = self.metrics["config"]
        return f"seed {config['seed']}, fold {config['folds']['fold']} of {config['folds']['count']}"


def read_run(name: str, folder: Path) -> Run:
    """The run in `folder` (named as the kernel source it is attached as); errors name the missing file."""
    folder = Path(folder)
    for file in [OOF, METRICS, MODEL]:
        if not (folder / file).is_file():
            raise FileNotFoundError(
                f"{folder / file}: missing; {name} is not a finished training run with a validation fold "
                f"(train it with `make train EXP=...` or download it with `make output KERNEL={name}`)"
            )
    with np.load(folder / OOF) as arrays:
        missing = [field for field in FIELDS if field not in arrays.files]
        if missing or len(arrays.files) == len(FIELDS):
            raise ValueError(f"{folder / OOF}: lacks {missing or 'any embedding array'}; train the run again")
        outputs = {key: arrays[key].astype(np.float32) for key in arrays.files if key not in FIELDS}
        ids, labels = arrays["posting_id"].astype(str), arrays["label_group"]
    return Run(name, folder, ids, labels, outputs, json.loads((folder / METRICS).read_text()))


def check_aligned(runs: list[Run]) -> None:
    """Raise naming both runs and the first differing row unless every run holds the same postings in one order."""
    first = runs[0]
    for run in runs[1:]:
        fix = f"({first.name}: {first.split}; {run.name}: {run.split}); train every run with the same seed and fold"
        if len(run.posting_ids) != len(first.posting_ids):
            raise ValueError(
                f"{first.name} and {run.name} hold different OOF postings: {len(first.posting_ids)} vs "
                f"{len(run.posting_ids)} rows {fix}"
            )
        differ = np.flatnonzero((run.posting_ids != first.posting_ids) | (run.labels != first.labels))
        if len(differ):
            row = differ[0]
            raise ValueError(
                f"{first.name} and {run.name} hold different OOF postings: row {row} is "
                f"{first.posting_ids[row]} (group {first.labels[row]}) vs {run.posting_ids[row]} (group "
                f"{run.labels[row]}) {fix}"
            )


def attached_runs() -> list[str]:
    """The slugs of the attached sources that are training runs (hold OOF embeddings), sorted."""
    return sorted(slug for slug, folder in paths.attached_sources().items() if (folder / OOF).is_file())


def oof_postings(run: Run, train: pd.DataFrame, source: str) -> pd.DataFrame:
    """The rows of train.csv (`source`) of the run's OOF postings, in OOF order; every id must be there."""
    by_id = train.set_index("posting_id", drop=False)
    missing = np.flatnonzero(~np.isin(run.posting_ids, by_id.index))
    if len(missing):
        row = missing[0]
        raise ValueError(
            f"{run.folder / OOF}: row {row} is posting {run.posting_ids[row]}, which {source} lacks "
            f"({len(missing)} of its {len(run.posting_ids)} postings are not there); the run was trained on other data"
        )
    return by_id.loc[run.posting_ids].reset_index(drop=True)
