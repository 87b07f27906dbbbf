"""The commit run's evaluation of a plan on the rows it was tuned on (cv_scores.json), with its plots.

A tuned plan is scored on the out-of-fold rows of its models, recomputed from the checkpoints as on the test (so CV
checks that very path); its second stage's classifier is trained again by group k-fold on these rows, which gives each
pair an out-of-fold probability. The title plan is scored on train's sample it was tuned on. The report holds F1 per
component, of the union and of the stage, each model's outputs alone, the thresholds raw and fitted to the test
gallery, and the ablation (one rule changed at a time).
"""

import numpy as np

from lib.data import text
from lib.inference import pipeline, title_plan
from lib.inference.fallback import fallback_matches
from lib.inference.gallery import ForTest
from lib.inference.stopwatch import Stopwatch
from lib.inference.time_budget import KAGGLE_TRAIN_ROWS
from lib.matching import cv, metrics, pairs, plots, thresholds
from lib.second_stage import graph, pair_stage

HISTOGRAMS, CURVES = "similarity_histograms.png", "f1_vs_threshold.png"


def scored_stage(
    plan: dict, found: pipeline.Signals, rows, titles: list[str], labels: np.ndarray, stopwatch: Stopwatch
) -> dict | None:
    """The plan's second stage scored on the evaluation `rows` by out-of-fold probabilities, or None without one."""
    if "pair_stage" not in plan:
        return None

    def timer(part: str):
        return stopwatch.stage(f"pair stage: {part}", len(rows))

    image_text = pipeline.image_text_pairs(plan["models"], found.outputs)
    phashes = list(rows.image_phash)
    scored = pair_stage.cross_validated(
        found.vectors, found.neighbours, found.candidates, titles, phashes, labels, timer, image_text
    )
    with timer("graph steps"):
        matches = graph.apply(scored.candidates, scored.scores, plan["pair_stage"]["graph"])
    f1 = metrics.mean_f1(pairs.to_posting_ids(matches, rows.posting_id), metrics.true_matches(rows.posting_id, labels))
    return {"f1": f1, "used": True, "pairs": len(scored.scores), "graph": plan["pair_stage"]["graph"]}


def evaluate(fitted: ForTest, train, image_dir, corpus: list[str], settings: dict, stopwatch: Stopwatch) -> dict:
    """The plan's CV on the rows it was tuned on (of `train`, images in `image_dir`), each component's and model's,
    the ablation; writes HISTOGRAMS and CURVES. The fallback submission is timed on the rows too, for the projection.
    `corpus` and `settings` (with fallback_tfidf_threshold) as for lib.inference.pipeline.signals."""
    plan, tuning = fitted.plan, fitted.tuning
    rows = tuning.rows if tuning else pipeline.evaluation_rows(plan, train)
    titles = tuning.titles if tuning else [text.normalise_title(title) for title in rows.title]
    labels = rows.label_group.to_numpy()
    on_kaggle = title_plan.KAGGLE_ROWS if tuning else round(KAGGLE_TRAIN_ROWS * len(rows) / len(train))
    with stopwatch.phase("evaluation", on_kaggle):
        fallback_matches(titles, corpus, settings["fallback_tfidf_threshold"], stopwatch)
        if tuning:
            found, stage_report = tuning.signals, tuning.stage
        else:
            found = pipeline.signals(plan, rows, titles, image_dir, corpus, settings, stopwatch)
            stage_report = scored_stage(plan, found, rows, titles, labels, stopwatch)
    c, conflicts, vectors, rules = found.candidates, found.conflicts, found.vectors, plan["matching"]
    curves = thresholds.component_curves(c, vectors, labels)
    predicted = pairs.to_posting_ids(pairs.to_lists(c, pairs.predict(c, rules, conflicts)), rows.posting_id)
    union = metrics.mean_f1(predicted, metrics.true_matches(rows.posting_id, labels))
    chosen = {name: rule["threshold"] for name, rule in rules["components"].items()}
    plots.similarity_histograms(c, labels, list(vectors)).savefig(HISTOGRAMS, dpi=80)
    plots.f1_curves(thresholds.GRID, curves, chosen).savefig(CURVES, dpi=80)
    ablation = thresholds.ablation(c, rules, labels, conflicts)
    if stage_report:
        ablation["pair stage"] = stage_report["f1"]
        ablation |= {f"pair stage: {s['step']}": s["f1"] for s in stage_report.get("steps", [])}
    if tuning:
        evaluated_on = tuning.evaluated_on
    else:
        evaluated_on = "all of train" if rows is train else "the models' out-of-fold rows"
    return {
        "rows": len(rows),
        "evaluated_on": evaluated_on,
        "f1": {**{name: float(curve.max()) for name, curve in curves.items()}, "union": union}
        | ({"pair stage": stage_report["f1"]} if stage_report else {}),
        "models": {  # each model's outputs alone and their union, as its training measured them
            f"{model}/{output}": score
            for model, embeddings in found.outputs.items()
            for output, score in cv.cv_scores(embeddings, labels, settings["k"])[0]["f1"].items()
        },
        "optimiser_f1": plan.get("cv", {}).get("f1", {}),
        "thresholds": {"union": rules["components"]},
        "gallery_corrected": {"rows": fitted.rows, "union": fitted.rules["components"]},
        "ablation": ablation,
        "pair_stage": stage_report,
    }


def summary(report: dict) -> str:
    """The report's CV F1 of each component, the union and the stage beside the optimiser's, and its ablation: a line
    each."""
    lines = [
        f"CV F1 {name:>12}: {score:.4f}   (optimiser: {report['optimiser_f1'].get(name, float('nan')):.4f})"
        for name, score in report["f1"].items()
    ]
    return "\n".join(lines + [f"ablation {name:>32}: {score:.4f}" for name, score in report["ablation"].items()])
