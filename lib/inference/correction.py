"""A plan fitted to its test gallery, from what the out-of-fold rows left for it (FILE, written next to the plan).

A plan's thresholds (and its second stage's graph steps) were tuned on a few thousand out-of-fold postings; a test of
70,000 finds about ten times as many close false neighbours per posting, so both are searched again under the false
matches expected in the larger gallery (lib.matching.thresholds.gallery_false). That search needs the out-of-fold
candidate pairs, their unit conflicts and label groups, and for a second stage its pairs' out-of-fold probabilities:
the optimiser writes them to FILE beside inference_config.json, so the scoring rerun corrects the plan for its own test
size without embedding one train posting. The title plan, tuned in the inference kernel itself, gives the same parts
from its tuning on train.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lib.matching import thresholds
from lib.matching.pairs import Candidates
from lib.second_stage import graph_search

FILE = "correction.npz"


@dataclass
class OutOfFold:
    """What the correction needs from the rows a plan was tuned on.

    Attributes:
        candidates: the candidate pairs of the plan's components and groups, with their similarities.
        conflicts: each candidate pair's unit conflict (lib.matching.pairs.unit_conflicts).
        labels: each row's label group.
        stage_pairs: the second stage's pairs both ways (rows and columns only), or None without a stage.
        stage_scores: their out-of-fold probabilities, or None.
    """

    candidates: Candidates
    conflicts: np.ndarray
    labels: np.ndarray
    stage_pairs: Candidates | None = None
    stage_scores: np.ndarray | None = None


def kept(oof: OutOfFold, names: list[str]) -> OutOfFold:
    """`oof` with the candidate pairs that one of the components `names` or a group (a similarity without neighbours)
    proposes, and only those similarities: what a plan of these components needs."""
    c = oof.candidates
    columns = [name for name in c.similarity if name in names or name not in c.nearest]
    proposed = np.zeros(len(c.rows), dtype=bool)
    for name in columns:
        proposed |= c.similarity[name] > -np.inf
    similarity = {name: c.similarity[name][proposed] for name in columns}
    nearest = {name: c.nearest[name][proposed] for name in columns if name in c.nearest}
    candidates = Candidates(c.n, c.rows[proposed], c.cols[proposed], similarity, nearest)
    return OutOfFold(candidates, oof.conflicts[proposed], oof.labels, oof.stage_pairs, oof.stage_scores)


def write(path: Path, oof: OutOfFold) -> None:
    """FILE: the arrays of `oof` (rows and columns as int32)."""
    c = oof.candidates
    arrays = {"n": np.array(c.n), "rows": c.rows.astype(np.int32), "cols": c.cols.astype(np.int32)}
    arrays |= {f"similarity/{name}": values for name, values in c.similarity.items()}
    arrays |= {f"nearest/{name}": values for name, values in c.nearest.items()}
    arrays |= {"conflicts": oof.conflicts, "labels": oof.labels}
    if oof.stage_pairs is not None:
        stage = oof.stage_pairs
        arrays |= {"stage_rows": stage.rows.astype(np.int32), "stage_cols": stage.cols.astype(np.int32)}
        arrays |= {"stage_scores": oof.stage_scores}
    np.savez(path, **arrays)


def read(path: Path) -> OutOfFold:
    """The OutOfFold of a FILE; FileNotFoundError saying how to make one when it is missing."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: missing; a plan needs the out-of-fold pairs its correction for the test gallery is searched on: "
            "run the optimize-ensemble kernel again (`make optimize` locally) and attach its output"
        )
    with np.load(path) as arrays:
        n, rows, cols = int(arrays["n"]), arrays["rows"].astype(np.int64), arrays["cols"].astype(np.int64)
        named = {tuple(key.split("/", 1)): arrays[key] for key in arrays.files if "/" in key}
        similarity = {name: values for (kind, name), values in named.items() if kind == "similarity"}
        nearest = {name: values for (kind, name), values in named.items() if kind == "nearest"}
        oof = OutOfFold(Candidates(n, rows, cols, similarity, nearest), arrays["conflicts"], arrays["labels"])
        if "stage_scores" in arrays.files:
            pairs = (arrays["stage_rows"].astype(np.int64), arrays["stage_cols"].astype(np.int64))
            oof.stage_pairs, oof.stage_scores = Candidates(n, *pairs, {}, {}), arrays["stage_scores"]
    return oof


def for_test(oof: OutOfFold, plan: dict, test_rows: int) -> tuple[dict, dict | None]:
    """The plan's matching rules and its second stage (None without one) searched again for a gallery of `test_rows`
    postings: thresholds and min2 of its matching components (thresholds.corrected_thresholds), the graph steps."""
    rules = thresholds.corrected_thresholds(oof.candidates, plan["matching"], oof.labels, test_rows, oof.conflicts)
    if "pair_stage" not in plan:
        return rules, None
    if oof.stage_scores is None:
        raise ValueError("the plan has a second stage but its out-of-fold rows carry no pair scores to correct it by")
    expected_false = thresholds.gallery_false((test_rows - 1) / max(oof.candidates.n - 1, 1))
    config = graph_search.search(oof.stage_pairs, oof.stage_scores, oof.labels, expected_false)[0]
    return rules, {**plan["pair_stage"], "graph": config}
