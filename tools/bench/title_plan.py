"""The title plan's time at Shopee's size (local only): the inference kernel's tuning bounded by
lib.inference.title_plan against the tuning on all of train, each stage's seconds and its T4 projection, and each
plan's F1 on the test.

Usage: python -m tools.bench.title_plan [--train 34250] [--test 70000]   (make bench-title-plan)

Synthetic postings (tools.bench.synthetic) stand for Kaggle's; MiniLM embeds them (data/datasets, `make datasets`).
What each plan runs, and the figures: docs/results.md, "The title plan's time bound".
"""

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from lib.data import text
from lib.data.competition import HIDDEN_TEST_ROWS
from lib.inference import correction, pipeline, time_budget, title_plan
from lib.inference.plan import TITLE_PLAN
from lib.inference.stopwatch import Stage, Stopwatch, sparse_products
from lib.matching import ensemble, metrics, pairs
from lib.neighbours.sparse import sparse_neighbors
from lib.second_stage import graph, pair_model, pair_stage
from tools.bench.synthetic import KERNEL_SETTINGS, titled_postings

ROOT = Path(__file__).resolve().parents[2]
HOST = ("host", "sparse")  # the stage kinds that run on the CPU on Kaggle too
FALLBACK_THRESHOLD = 0.75  # the kernel's CONFIG["fallback_tfidf_threshold"]


def signals(frame: pd.DataFrame, titles: list[str], corpus: list[str], stopwatch: Stopwatch) -> tuple:
    """The title plan's candidate pairs, unit conflicts, component vectors and neighbours of the postings, as the
    kernel's `signals` makes them."""
    outputs = pipeline.model_outputs(TITLE_PLAN, frame, Path("no-images"), KERNEL_SETTINGS, stopwatch)
    vectors = pipeline.component_vectors(TITLE_PLAN, outputs, titles, corpus, stopwatch)
    neighbours = pipeline.neighbour_search(vectors, KERNEL_SETTINGS["k"], stopwatch)
    c, conflicts = pipeline.candidate_pairs(frame, titles, neighbours, stopwatch)
    return c, conflicts, vectors, neighbours


def fallback(titles: list[str], corpus: list[str], stopwatch: Stopwatch) -> None:
    """The kernel's fallback submission's matches (TF-IDF neighbours, identical titles), timed as its stage."""
    with stopwatch.stage("fallback submission", len(titles), "sparse") as details:
        x = text.tfidf_vectors(titles, corpus)
        details["flops"] = sparse_products(x)
        c = pairs.candidates({"tfidf": sparse_neighbors(x, k=50)}, {"title": titles})
        rules = {"components": {"tfidf": {"threshold": FALLBACK_THRESHOLD}}, "groups": ["title"]}
        pairs.to_lists(c, pairs.predict(c, rules))


def tuned_plan(train: pd.DataFrame, rows: np.ndarray, folds: int, corpus: list[str], test_rows: int, folder: Path):
    """A plan tuned on the train rows as the kernel tunes the title plan, with the stopwatch of its stages: the plan
    with its matching rules, and those rules and second stage fitted to a test gallery of `test_rows`."""
    stopwatch = Stopwatch()
    frame = train.iloc[rows].reset_index(drop=True)
    titles, labels = [text.normalise_title(title) for title in frame.title], frame.label_group.to_numpy()
    with stopwatch.phase("title plan", len(frame)):
        found = signals(frame, titles, corpus, stopwatch)
        tuned = title_plan.tune(found, titles, list(frame.image_phash), labels, stopwatch, True, folds)
    plan, out_of_fold = {**TITLE_PLAN, "matching": tuned.rules}, correction.OutOfFold(found[0], found[1], labels)
    fitted = tuned.stage
    if fitted.f1 >= tuned.f1 + ensemble.MIN_GAIN:
        fitted.model.save_model(str(folder / pair_stage.MODEL_FILE))
        plan["pair_stage"] = {"file": pair_stage.MODEL_FILE, "features": fitted.scored.names, "graph": fitted.config}
        out_of_fold.stage_pairs, out_of_fold.stage_scores = fitted.scored.candidates, fitted.scored.scores
    with stopwatch.phase("plan", len(frame)), stopwatch.stage("fit to the test gallery", len(frame)):
        rules, stage = correction.for_test(out_of_fold, plan, test_rows)
    print(f"tuned on {len(frame)} rows: rules CV {tuned.f1:.4f}, second stage CV {fitted.f1:.4f}", flush=True)
    return {"plan": plan, "rules": rules, "stage": stage, "stopwatch": stopwatch, "folder": folder}


def matched_f1(tuned: dict, test: pd.DataFrame, titles: list[str], found: tuple) -> float:
    """Mean F1 on the test of the plan fitted to its gallery (its second stage where it has one, else its rules), the
    matching timed as the kernel's stages."""
    c, conflicts, vectors, neighbours = found
    stopwatch, stage = tuned["stopwatch"], tuned["stage"]
    with stopwatch.phase("test", len(test)):
        if stage:
            phashes = list(test.image_phash)
            with stopwatch.stage("pair stage: features", len(test)):
                both, scores, _ = pair_stage.score(vectors, neighbours, c, titles, phashes, stage, tuned["folder"])
            with stopwatch.stage("pair stage: graph steps", len(test)):
                matches = graph.apply(both, scores, stage["graph"])
        else:
            with stopwatch.stage("matching rules", len(test)):
                matches = pairs.to_lists(c, pairs.predict(c, tuned["rules"], conflicts))
    actual = metrics.true_matches(test.posting_id, test.label_group)
    return metrics.mean_f1(pairs.to_posting_ids(matches, test.posting_id), actual)


def t4_seconds(stages: list[Stage], rates: dict) -> dict[str, float]:
    """Each stage's T4 projection, by name."""
    return {stage.name: time_budget.t4_projection(stage, rates)[0] for stage in stages}


def report(plans: dict[str, list[Stage]], rates: dict) -> str:
    """Each stage's T4 seconds under each plan and their ratio, the totals, and the CPU stages' share of half the GPU
    limit (lib.inference.title_plan's bound)."""
    seconds = {label: t4_seconds(stages, rates) for label, stages in plans.items()}
    cpu = {label: sum(seconds[label][s.name] for s in stages if s.kind in HOST) for label, stages in plans.items()}
    today, bounded = seconds.values()
    row = "{:<48} {:>9} {:>9} {:>7}"
    lines = [row.format("stage (T4 seconds at full size)", *plans, "ratio")]
    for name in dict.fromkeys([*today, *bounded]):
        before, after = today.get(name, 0.0), bounded.get(name, 0.0)
        lines.append(row.format(name, f"{before:.0f}", f"{after:.0f}", f"{after / before:.2f}" if before else "-"))
    for name, totals in [("total", {k: sum(v.values()) for k, v in seconds.items()}), ("CPU stages", cpu)]:
        before, after = totals.values()
        lines.append(row.format(name, f"{before:.0f}", f"{after:.0f}", f"{after / before:.2f}"))
    half = time_budget.GPU_LIMIT_SECONDS / 2
    return "\n".join(lines + [", ".join(f"{k}: CPU stages {v / half:.0%} of half the limit" for k, v in cpu.items())])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=int, default=time_budget.KAGGLE_TRAIN_ROWS)
    parser.add_argument("--test", type=int, default=HIDDEN_TEST_ROWS)
    args = parser.parse_args()
    torch.set_num_threads(2)
    os.environ.setdefault("KERNEL_INPUT_DIR", str(ROOT / "data" / "datasets"))  # MiniLM, as `make datasets` lays it
    train, test = titled_postings(args.train, seed=10), titled_postings(args.test, seed=20)
    test_titles = [text.normalise_title(title) for title in test.title]
    corpus = [text.normalise_title(title) for title in train.title] + test_titles
    labels = train.label_group.to_numpy()
    with tempfile.TemporaryDirectory() as today_folder, tempfile.TemporaryDirectory() as bounded_folder:
        plans = {
            "today": tuned_plan(train, np.arange(len(train)), pair_model.FOLDS, corpus, len(test), Path(today_folder)),
            "bounded": tuned_plan(
                train, title_plan.sample(labels), title_plan.PAIR_FOLDS, corpus, len(test), Path(bounded_folder)
            ),
        }
        shared = Stopwatch()
        with shared.phase("test", len(test)):
            fallback(test_titles, corpus, shared)
            found = signals(test, test_titles, corpus, shared)
        f1 = {label: matched_f1(tuned, test, test_titles, found) for label, tuned in plans.items()}
    stages = {label: tuned["stopwatch"].stages + shared.stages for label, tuned in plans.items()}
    rates = time_budget.measured_rates(stages["today"], torch.device("cpu"))
    for label, own in stages.items():
        print(f"\n{label}:\n{time_budget.table(own, rates)}")
    scores = ", ".join(f"{label} {score:.4f}" for label, score in f1.items())
    print(f"\n{args.train} train postings, {args.test} test postings; F1 on the test: {scores}")
    print(report(stages, rates))


if __name__ == "__main__":
    main()
