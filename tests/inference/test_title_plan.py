"""lib.inference.title_plan: the rows the title plan is tuned on (whole label groups, seeded, at most SAMPLE_ROWS, the
same draw in the commit run and the scoring rerun) and the tuning's stages."""

import numpy as np
import pytest

from lib.data.text import tfidf_vectors
from lib.inference import title_plan
from lib.inference.plan import TITLE_PLAN
from lib.inference.stopwatch import Stopwatch
from lib.matching import pairs
from lib.neighbours.dense import neighbors
from lib.neighbours.sparse import sparse_neighbors
from lib.second_stage import pair_model
from tests.second_stage.test_pair_stage import variants


def groups(seed: int = 0) -> np.ndarray:
    """The label groups of 1,000 postings in groups of 1 to 51, in a shuffled order."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 52, size=60)
    return rng.permutation(np.repeat(rng.choice(10**9, size=len(sizes), replace=False), sizes))[:1000]


def test_the_sample_takes_whole_label_groups_up_to_the_bound(monkeypatch):
    monkeypatch.setattr(title_plan, "SAMPLE_ROWS", 300)
    labels = groups()
    rows = title_plan.sample(labels)
    drawn = np.unique(labels[rows])
    assert len(rows) <= 300 and np.all(np.diff(rows) > 0)
    assert set(rows) == set(np.flatnonzero(np.isin(labels, drawn))), "every posting of a drawn group"
    sizes = dict(zip(*np.unique(labels, return_counts=True)))
    assert len(rows) > 300 - max(sizes.values()), "groups are drawn until the next would not fit"


def test_the_sample_is_seeded_and_the_same_in_both_runs(monkeypatch):
    monkeypatch.setattr(title_plan, "SAMPLE_ROWS", 300)
    labels = groups()
    rows = title_plan.sample(labels)
    assert np.array_equal(title_plan.sample(labels.copy()), rows), "the commit run and the rerun read one train.csv"
    order = np.random.default_rng(1).permutation(len(labels))
    assert set(labels[order][title_plan.sample(labels[order])]) == set(labels[rows]), "by groups, not row order"
    monkeypatch.setattr(title_plan, "SAMPLE_SEED", 1)
    assert not np.array_equal(title_plan.sample(labels), rows), "the seed draws the groups"


def test_a_train_within_the_bound_is_taken_whole(monkeypatch):
    labels = groups()
    assert np.array_equal(title_plan.sample(labels), np.arange(len(labels)))
    monkeypatch.setattr(title_plan, "SAMPLE_ROWS", len(labels))
    assert np.array_equal(title_plan.sample(labels), np.arange(len(labels)))


def title_signals(titles: list[str], images: np.ndarray) -> tuple:
    """The title plan's candidate pairs, unit conflicts, vectors and neighbours, its MiniLM stood in for by `images`."""
    analyzers = {name: part["tfidf"]["analyzer"] for name, part in TITLE_PLAN["components"].items() if "tfidf" in part}
    vectors = {name: tfidf_vectors(titles, titles, analyzer) for name, analyzer in analyzers.items()}
    found = {name: sparse_neighbors(x, k=10) for name, x in vectors.items()}
    vectors["text"], found["text"] = images, neighbors(images, k=10)
    c = pairs.candidates(found, {"title": titles})
    return c, pairs.unit_conflicts(c, titles), vectors, found


@pytest.mark.parametrize("folds", [title_plan.PAIR_FOLDS, pair_model.FOLDS])
def test_the_tuning_times_the_search_and_the_second_stage_by_its_folds(folds, monkeypatch):
    labels, titles, images = variants(0)
    signals = title_signals(titles, images)
    fold_counts = []
    real_scores = pair_model.out_of_fold_scores

    def counted(*args):
        fold_counts.append(len(np.unique(args[-1])))
        return real_scores(*args)

    monkeypatch.setattr(pair_model, "out_of_fold_scores", counted)
    stopwatch = Stopwatch()
    tuned = title_plan.tune(signals, titles, ["0" * 16] * len(labels), labels, stopwatch, True, folds)
    assert fold_counts == [folds]
    assert tuned.stage is not None and 0 < tuned.f1 <= 1 and tuned.rules["components"]
    assert [stage.name for stage in stopwatch.stages] == [
        "test: threshold search",
        "test: pair stage: features",
        "test: pair stage: classifier by group k-fold",
        "test: pair stage: graph search",
        "test: pair stage: final classifier",
    ]
    assert title_plan.tune(signals, titles, [""] * len(labels), labels, Stopwatch(), False).stage is None
