"""How the title-only plan (lib.inference.plan.TITLE_PLAN) does on competition folders, through the inference kernel's
own stages: the commit run (the plan searched on all of train, against baselines and an ablation, with its second
stage, unbounded and bounded as the kernel tunes it) and the scoring rerun played on a fold (the plan searched on fold
0 of 5, its thresholds corrected for all the rows, scored on all of them).

    python -m tools.bench.title_report data/sample data/real/restaurants     (make title-report)

Writes runs/title-report/<set>.md. What each part compares, and the figures: docs/results.md, "The title plan" and
"The gallery correction".
"""

import argparse
import json
import os
from pathlib import Path

import numpy as np

from lib.data import folds, text
from lib.data.postings import read_postings
from lib.inference import pipeline, title_plan
from lib.inference.plan import TITLE_PLAN
from lib.inference.stopwatch import Stopwatch
from lib.matching import pairs, thresholds
from lib.second_stage import pair_model, pair_stage
from tools.bench.synthetic import KERNEL_SETTINGS

ROOT = Path(__file__).resolve().parents[2]
FOLDS, FOLD = 5, 0


class Postings:
    """A competition folder's train postings, their normalised titles and the plan's model outputs on them."""

    def __init__(self, comp: Path):
        self.train = read_postings(comp / "train.csv", labelled=True)
        self.titles = [text.normalise_title(title) for title in self.train.title]
        self.labels = self.train.label_group.to_numpy()
        self.stopwatch = Stopwatch()
        self.outputs = pipeline.model_outputs(
            TITLE_PLAN, self.train, comp / "train_images", KERNEL_SETTINGS, self.stopwatch
        )

    def signals(self, rows: np.ndarray) -> tuple[pairs.Candidates, np.ndarray, dict, dict]:
        """Candidate pairs, unit conflicts, component vectors and neighbours of some rows among themselves (TF-IDF's
        idf from every title, as the kernel takes it from train and test)."""
        outputs = {name: {out: x[rows] for out, x in found.items()} for name, found in self.outputs.items()}
        titles = [self.titles[row] for row in rows]
        vectors = pipeline.component_vectors(TITLE_PLAN, outputs, titles, self.titles, self.stopwatch)
        neighbours = pipeline.neighbour_search(vectors, KERNEL_SETTINGS["k"], self.stopwatch)
        postings = self.train.iloc[rows].reset_index(drop=True)
        return *pipeline.candidate_pairs(postings, titles, neighbours, self.stopwatch), vectors, neighbours


def scored(c: pairs.Candidates, plan: dict, labels: np.ndarray, conflicts: np.ndarray) -> float:
    """CV F1 of a matching plan."""
    return pairs.pair_f1(c, pairs.predict(c, plan, conflicts), labels)


def best_threshold(c: pairs.Candidates, name: str, labels: np.ndarray) -> float:
    """A component's best threshold alone."""
    return float(thresholds.GRID[np.argmax(thresholds.component_curves(c, [name], labels)[name])])


def commit_run(postings: Postings) -> dict:
    """The plan searched on all rows against a plain tuned word TF-IDF, each component alone, the ablation and the
    second stage."""
    c, conflicts, vectors, neighbours = postings.signals(np.arange(len(postings.labels)))
    phashes = list(postings.train.image_phash)
    stage = pair_stage.fit(vectors, neighbours, c, postings.titles, phashes, postings.labels, folds=pair_model.FOLDS)
    plan, f1 = thresholds.search(c, TITLE_PLAN["matching"], postings.labels, conflicts)
    alone = {
        name: float(curve.max()) for name, curve in thresholds.component_curves(c, c.nearest, postings.labels).items()
    }
    plain = {"components": {"tfidf": {"threshold": best_threshold(c, "tfidf", postings.labels)}}}
    return {
        "rows": len(postings.labels),
        "plan": plan,
        "plan f1": f1,
        "plain tuned word TF-IDF": scored(c, plain, postings.labels, conflicts),
        "components alone": alone,
        "ablation": thresholds.ablation(c, plan, postings.labels, conflicts),
        "pair stage": {"pairs": len(stage.scored.scores), "f1": stage.f1, "steps": stage.steps},
    }


def bounded_run(postings: Postings) -> dict:
    """The plan as the inference kernel tunes it (lib.inference.title_plan.sample's rows, the classifier's CV by its
    PAIR_FOLDS): CV F1 of its searched rules and of its second stage on those rows."""
    rows = title_plan.sample(postings.labels)
    found = postings.signals(rows)
    titles, phashes = [postings.titles[row] for row in rows], list(postings.train.image_phash.iloc[rows])
    tuned = title_plan.tune(found, titles, phashes, postings.labels[rows], postings.stopwatch, True)
    return {"rows": len(rows), "folds": title_plan.PAIR_FOLDS, "plan f1": tuned.f1, "pair stage f1": tuned.stage.f1}


def rerun_on_fold(postings: Postings) -> dict:
    """The plan searched on one fold, corrected for all rows and scored on all rows, against its raw thresholds and
    the plan searched on all rows."""
    everything = np.arange(len(postings.labels))
    fold = np.flatnonzero(folds.group_folds(postings.labels, FOLDS, seed=0) == FOLD)
    small, small_conflicts, *_ = postings.signals(fold)
    large, conflicts, *_ = postings.signals(everything)
    small_labels, labels = postings.labels[fold], postings.labels
    tuned, _ = thresholds.search(small, TITLE_PLAN["matching"], small_labels, small_conflicts)
    corrected = thresholds.corrected_thresholds(small, tuned, small_labels, len(everything), small_conflicts)
    best, best_f1 = thresholds.search(large, TITLE_PLAN["matching"], labels, conflicts)
    fold_best = {name: best_threshold(small, name, small_labels) for name in small.nearest}
    moved = {
        name: thresholds.corrected_thresholds(
            small, {"components": {name: {"threshold": threshold}}}, small_labels, len(everything)
        )["components"][name]["threshold"]
        for name, threshold in fold_best.items()
    }
    return {
        "fold rows": len(fold),
        "rows": len(everything),
        "tuned on the fold, raw": scored(large, tuned, labels, conflicts),
        "tuned on the fold, corrected": scored(large, corrected, labels, conflicts),
        "searched on all rows": best_f1,
        "every posting alone": scored(large, {"components": {}}, labels, conflicts),
        "thresholds": {
            name: {"fold": threshold, "corrected": moved[name], "all rows": best_threshold(large, name, labels)}
            for name, threshold in fold_best.items()
        },
        "plans": {"fold": tuned, "corrected": corrected, "all rows": best},
    }


def shown(threshold: float) -> str:
    """A threshold as the report shows it: "off" for lib.matching.pairs.NO_MATCH."""
    return "off" if threshold >= pairs.NO_MATCH else f"{threshold:.2f}"


def markdown(name: str, commit: dict, bounded: dict, rerun: dict) -> str:
    """The report of one folder."""
    lines = [f"### {name}", "", f"Commit run (all {commit['rows']} train rows):", ""]
    lines += ["| plan | CV F1 |", "|---|---:|", f"| title plan, searched | {commit['plan f1']:.4f} |"]
    lines += [f"| plain word TF-IDF, one tuned threshold | {commit['plain tuned word TF-IDF']:.4f} |"]
    lines += [f"| {component} alone | {f1:.4f} |" for component, f1 in commit["components alone"].items()]
    lines += [f"| ablation: {line} | {f1:.4f} |" for line, f1 in commit["ablation"].items() if line != "tuned"]
    stage = commit["pair stage"]
    lines += [f"| **second stage** ({stage['pairs']} pairs, classifier by group k-fold) | **{stage['f1']:.4f}** |"]
    lines += [
        f"| second stage: {step['step']}{'' if step['kept'] else ' (not kept)'} | {step['f1']:.4f} |"
        for step in stage["steps"]
    ]
    within = f"{bounded['rows']} of {commit['rows']} rows, the classifier's CV by {bounded['folds']} folds"
    lines += [
        f"| bounded as the inference kernel tunes it ({within}): title plan, searched | {bounded['plan f1']:.4f} |"
    ]
    lines += [f"| bounded: **second stage** | **{bounded['pair stage f1']:.4f}** |"]
    lines += ["", f"Plan: `{json.dumps(commit['plan'])}`", ""]
    lines += [f"Rerun played on a fold ({rerun['fold rows']} rows tuned, scored on all {rerun['rows']}):", ""]
    lines += ["| plan scored on all rows | F1 |", "|---|---:|"]
    scores = ["tuned on the fold, raw", "tuned on the fold, corrected", "searched on all rows", "every posting alone"]
    lines += [f"| {key} | {rerun[key]:.4f} |" for key in scores]
    lines += ["", "| component | best on the fold | corrected | best on all rows |", "|---|---:|---:|---:|"]
    lines += [
        f"| {component} | {shown(t['fold'])} | {shown(t['corrected'])} | {shown(t['all rows'])} |"
        for component, t in rerun["thresholds"].items()
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", type=Path, help="competition folders (train.csv with label_group)")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "title-report", help="folder for the reports")
    args = parser.parse_args()
    os.environ.setdefault("KERNEL_INPUT_DIR", str(ROOT / "data" / "datasets"))  # MiniLM, as `make datasets` lays it
    args.out.mkdir(parents=True, exist_ok=True)
    for folder in args.folders:
        postings = Postings(folder)
        commit, bounded, rerun = commit_run(postings), bounded_run(postings), rerun_on_fold(postings)
        report = markdown(folder.name, commit, bounded, rerun)
        found = {"commit run": commit, "bounded": bounded, "rerun": rerun}
        (args.out / f"{folder.name}.json").write_text(json.dumps(found, indent=2))
        (args.out / f"{folder.name}.md").write_text(report)
        print(report, flush=True)


if __name__ == "__main__":
    main()
