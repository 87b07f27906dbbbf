# %% [markdown]
# # Shopee - Price Match Guarantee: inference
# Matches every test posting by a plan: the models, ensembles, thresholds and rules that `kernels/optimize-ensemble`
# tuned on out-of-fold rows (attached as a kernel source), or, without one, title signals only (TF-IDF of words,
# character n-grams and model codes, MiniLM; lib.inference.plan.TITLE_PLAN) tuned here on a sample of train's whole
# label groups (lib.inference.title_plan). When `test.csv` holds only the 3 visible rows and Kaggle does not set
# KAGGLE_IS_COMPETITION_RERUN (its commit run) this is the CV run: the plan is also evaluated on the rows it was tuned
# on. The scoring rerun only submits: it embeds each test posting once per model, and fits the plan's thresholds to its
# test's size from the out-of-fold pairs the optimiser left beside the plan (lib.inference.correction). Where the plan
# has a second stage (a pair classifier and graph steps, lib.second_stage.pair_stage) it matches instead of the rules;
# the title plan fits one here on train and uses it where it beats the rules on CV.
#
# Safe on the hidden rerun: a TF-IDF submission is written first and kept if a later stage fails (the failure is
# printed and recorded in run_status.json); in the commit run the same failure also stops the notebook, so that it is
# seen before submitting. Unreadable images are replaced (lib.data.images); every stage is timed once and projected by
# its kind to 70,000 rows on a T4 (timings.json, lib/inference/time_budget.py), and a plan projected over
# time_budget.BUDGET_SHARE of the 2-hour limit stops the commit run.

# %%
CONFIG = {
    "plan": "optimize-ensemble/inference_config.json",  # the tuned plan in an attached source; None: TITLE_PLAN
    "k": 50,  # neighbours per posting and component
    "batch_size": 64,  # halved on out-of-memory errors of the device
    "workers": 2,  # image loader processes
    "max_length": 64,  # title tokens of sentence models
    "fallback_tfidf_threshold": 0.75,  # the fallback submission: TF-IDF neighbours from here, identical titles
    "pair_stage": True,  # the title plan: fit the second stage on train, used where it gains on CV
}

# %%
import json
import traceback
from pathlib import Path

import matplotlib.pyplot as plt

from lib.data import competition, paths, text
from lib.data.postings import read_postings
from lib.data.submission import MAX_MATCHES, validate_submission, write_submission
from lib.devices import default_device
from lib.inference import correction, pipeline, time_budget, title_plan
from lib.inference.plan import TITLE_PLAN, read_tuned_config
from lib.inference.stopwatch import Stopwatch, sparse_products
from lib.matching import cv, ensemble, metrics, pairs, plots, thresholds
from lib.neighbours.sparse import sparse_neighbors
from lib.second_stage import graph, pair_stage

COMPETITION = paths.input_dir(competition.COMPETITION)
test = read_postings(COMPETITION / "test.csv")
train = read_postings(COMPETITION / "train.csv", labelled=True)
RERUN, WHY = competition.scoring_rerun(len(test))
CV_MODE = not RERUN
TARGET_ROWS = competition.HIDDEN_TEST_ROWS if CV_MODE else max(len(test), 1)
test_titles = [text.normalise_title(title) for title in test.title]
train_titles = [text.normalise_title(title) for title in train.title]
corpus = train_titles + test_titles  # the idf of TF-IDF
stopwatch = Stopwatch()
print(f"{len(test)} test postings, {len(train)} train postings")
print(f"{'the commit run (CV)' if CV_MODE else 'the scoring rerun (no CV)'}: {WHY}")
if test.empty:
    print("test.csv holds no postings (only its header): the submission will hold only its header")


# %% [markdown]
# ## Fallback submission
# TF-IDF neighbours of the titles and identical titles, written before any model runs.


# %%
def fallback_matches(titles: list[str]) -> list[list[int]]:
    """Each posting's matches by TF-IDF similarity over the fallback threshold, or an identical title; timed as the
    stage "fallback submission" (a sparse search)."""
    if not titles:
        return []
    with stopwatch.stage("fallback submission", len(titles), "sparse") as details:
        x = text.tfidf_vectors(titles, corpus)
        details["flops"] = sparse_products(x)
        c = pairs.candidates({"tfidf": sparse_neighbors(x, k=min(MAX_MATCHES, len(titles)))}, {"title": titles})
        rules = {"components": {"tfidf": {"threshold": CONFIG["fallback_tfidf_threshold"]}}, "groups": ["title"]}
        return pairs.to_lists(c, pairs.predict(c, rules))


fallback = fallback_matches(test_titles)
write_submission("submission.csv", test.posting_id, pairs.to_posting_ids(fallback, test.posting_id))
validate_submission("submission.csv", test.posting_id)
print(f"fallback submission.csv written ({len(test)} rows)")

# %% [markdown]
# ## The plan, and its fit to the test gallery
# A tuned plan comes with the out-of-fold pairs it was tuned on (correction.npz, from the optimiser). The default
# title plan is tuned here on train (nothing is trained on it), on a seeded sample of whole label groups that bounds
# its time (lib.inference.title_plan), by the optimiser's search, which may switch a component or rule off, and fits
# its second stage there. Either way the thresholds (and the stage's graph steps) are then searched again for the size
# of the test gallery: a gallery ten times larger holds more close false neighbours.


# %%
def signals(plan: dict, postings, titles: list[str], image_dir):
    """Candidate pairs of the postings under the plan, their unit conflicts, the component vectors, their neighbours
    and the model outputs."""
    outputs = pipeline.model_outputs(plan, postings, image_dir, CONFIG, stopwatch)
    vectors = pipeline.component_vectors(plan, outputs, titles, corpus, stopwatch)
    neighbours = pipeline.neighbour_search(vectors, CONFIG["k"], stopwatch)
    c, conflicts = pipeline.candidate_pairs(postings, titles, neighbours, stopwatch)
    return c, conflicts, vectors, neighbours, outputs


def stage_timer(rows: int):
    """A timer of the second stage's parts (lib.second_stage.pair_stage), host stages of `rows` postings."""
    return lambda part: stopwatch.stage(f"pair stage: {part}", rows)


def tuned_title_plan() -> tuple[dict, correction.OutOfFold, dict]:
    """TITLE_PLAN tuned on train's sample of whole label groups (lib.inference.title_plan): its rules, and its second
    stage (classifier saved as pair_stage.MODEL_FILE) where it beats them by ensemble.MIN_GAIN; the out-of-fold parts
    its correction needs; what the evaluation reports of it."""
    rows = title_plan.sample(train.label_group.to_numpy())
    sample = train.iloc[rows].reset_index(drop=True)
    titles, labels = [train_titles[row] for row in rows], sample.label_group.to_numpy()
    print(f"the title plan is tuned on {len(sample)} of the {len(train)} train postings (whole label groups)")
    with stopwatch.phase("title plan", title_plan.KAGGLE_ROWS):
        c, conflicts, vectors, neighbours, outputs = signals(TITLE_PLAN, sample, titles, COMPETITION / "train_images")
        phashes, found = list(sample.image_phash), (c, conflicts, vectors, neighbours)
        tuned = title_plan.tune(found, titles, phashes, labels, stopwatch, CONFIG["pair_stage"])
    plan, out_of_fold = {**TITLE_PLAN, "matching": tuned.rules}, correction.OutOfFold(c, conflicts, labels)
    stage_report, fitted = None, tuned.stage
    if fitted:
        used = fitted.f1 >= tuned.f1 + ensemble.MIN_GAIN
        stage_report = {"f1": fitted.f1, "used": used, "pairs": len(fitted.scored.scores), "graph": fitted.config}
        stage_report["steps"] = fitted.steps
        if used:
            fitted.model.save_model(pair_stage.MODEL_FILE)
            plan["pair_stage"] = {"file": pair_stage.MODEL_FILE, "features": fitted.scored.names}
            plan["pair_stage"]["graph"] = fitted.config
            out_of_fold.stage_pairs, out_of_fold.stage_scores = fitted.scored.candidates, fitted.scored.scores
    on = "all of train" if len(sample) == len(train) else f"train's sample of whole label groups ({len(sample)} rows)"
    evaluated = {"rows": sample, "titles": titles, "signals": (c, conflicts, vectors, outputs), "evaluated_on": on}
    return plan, out_of_fold, evaluated | {"stage": stage_report}


def read_plan() -> tuple[dict, correction.OutOfFold]:
    """The tuned plan of CONFIG["plan"] and the out-of-fold parts the optimiser left beside it."""
    path = Path(paths.input_path(CONFIG["plan"]))
    plan = read_tuned_config(path)
    with stopwatch.phase("plan", round(time_budget.KAGGLE_TRAIN_ROWS * plan["cv"]["rows"] / len(train))):
        with stopwatch.stage("read the plan's out-of-fold pairs", plan["cv"]["rows"]):
            return plan, correction.read(path.parent / correction.FILE)


def plan_for_test() -> tuple[dict, dict, dict | None, dict | None]:
    """The plan, its rules and second stage fitted to the test gallery (written to matching_config.json), and what
    the evaluation takes from the title plan's tuning (None for a tuned plan). Stages on the rows the plan was tuned
    on keep their rows in the rerun: the same share of Kaggle's train, or the title plan's sample of it."""
    plan, out_of_fold, tuning = (*read_plan(), None) if CONFIG["plan"] else tuned_title_plan()
    rows = len(out_of_fold.labels)
    on_kaggle = round(time_budget.KAGGLE_TRAIN_ROWS * rows / len(train)) if CONFIG["plan"] else title_plan.KAGGLE_ROWS
    with stopwatch.phase("plan", on_kaggle):
        with stopwatch.stage("fit to the test gallery", rows):
            rules, stage = correction.for_test(out_of_fold, plan, TARGET_ROWS)
    with open("matching_config.json", "w") as file:
        fitted = {"rows": TARGET_ROWS, "rules": rules, "pair_stage": stage}
        json.dump({"plan": plan["matching"], "for_the_test_gallery": fitted}, file, indent=2)
    print(f"the plan's rules for a gallery of {TARGET_ROWS}: {rules['components']}")
    return plan, rules, stage, tuning


# %% [markdown]
# ## Evaluation (the commit run only)
# A tuned plan is scored on the out-of-fold rows of its models, recomputed here from the checkpoints as on the test
# (so CV checks this very path); its second stage's classifier is trained again by group k-fold on these rows, which
# gives each pair an out-of-fold probability. The title plan is scored on train, where it was tuned. The scoring rerun
# skips this: it changes nothing it submits.


# %%
def scored_stage(c, vectors, neighbours, outputs, rows, titles, labels) -> dict | None:
    """The plan's second stage scored on the evaluation rows by out-of-fold probabilities, or None without one."""
    if "pair_stage" not in plan:
        return None
    timer = stage_timer(len(rows))
    image_text = pipeline.image_text_pairs(plan["models"], outputs)
    phashes = list(rows.image_phash)
    scored = pair_stage.cross_validated(vectors, neighbours, c, titles, phashes, labels, timer, image_text)
    with timer("graph steps"):
        matches = graph.apply(scored.candidates, scored.scores, plan["pair_stage"]["graph"])
    f1 = metrics.mean_f1(pairs.to_posting_ids(matches, rows.posting_id), metrics.true_matches(rows.posting_id, labels))
    return {"f1": f1, "used": True, "pairs": len(scored.scores), "graph": plan["pair_stage"]["graph"]}


def evaluated_on(rows) -> str:
    """What the evaluation's rows are."""
    if title_tuning:
        return title_tuning["evaluated_on"]
    return "all of train" if rows is train else "the models' out-of-fold rows"


def evaluate() -> dict:
    """The plan's CV on the rows it was tuned on, each component's and model's, the ablation; writes plots."""
    rows = title_tuning["rows"] if title_tuning else pipeline.evaluation_rows(plan, train)
    titles = title_tuning["titles"] if title_tuning else [text.normalise_title(title) for title in rows.title]
    on_kaggle = (
        title_plan.KAGGLE_ROWS if title_tuning else round(time_budget.KAGGLE_TRAIN_ROWS * len(rows) / len(train))
    )
    with stopwatch.phase("evaluation", on_kaggle):
        fallback_matches(titles)  # its time at a size, for the projection
        if title_tuning:
            c, conflicts, vectors, outputs = title_tuning["signals"]
            stage_report = title_tuning["stage"]
        else:
            c, conflicts, vectors, neighbours, outputs = signals(plan, rows, titles, COMPETITION / "train_images")
            stage_report = scored_stage(c, vectors, neighbours, outputs, rows, titles, rows.label_group.to_numpy())
    labels, rules = rows.label_group.to_numpy(), plan["matching"]
    curves = thresholds.component_curves(c, vectors, labels)
    predicted = pairs.to_posting_ids(pairs.to_lists(c, pairs.predict(c, rules, conflicts)), rows.posting_id)
    union = metrics.mean_f1(predicted, metrics.true_matches(rows.posting_id, labels))
    chosen = {name: rule["threshold"] for name, rule in rules["components"].items()}
    plots.similarity_histograms(c, labels, list(vectors)).savefig("similarity_histograms.png", dpi=80)
    plots.f1_curves(thresholds.GRID, curves, chosen).savefig("f1_vs_threshold.png", dpi=80)
    ablation = thresholds.ablation(c, rules, labels, conflicts)
    if stage_report:
        ablation["pair stage"] = stage_report["f1"]
        ablation |= {f"pair stage: {s['step']}": s["f1"] for s in stage_report.get("steps", [])}
    return {
        "rows": len(rows),
        "evaluated_on": evaluated_on(rows),
        "f1": {**{name: float(curve.max()) for name, curve in curves.items()}, "union": union}
        | ({"pair stage": stage_report["f1"]} if stage_report else {}),
        "models": {  # each model's outputs alone and their union, as its training measured them
            f"{model}/{output}": score
            for model, embeddings in outputs.items()
            for output, score in cv.cv_scores(embeddings, labels, CONFIG["k"])[0]["f1"].items()
        },
        "optimiser_f1": plan.get("cv", {}).get("f1", {}),
        "thresholds": {"union": rules["components"]},
        "gallery_corrected": {"rows": TARGET_ROWS, "union": test_rules["components"]},
        "ablation": ablation,
        "pair_stage": stage_report,
    }


def match_test() -> list[list[str]]:
    """Every test posting's matches under the plan fitted to the test gallery: by its second stage (every component)
    when there is one, else by the rules, from the components they use."""
    if test.empty:
        return []
    names = plan["components"] if test_stage else test_rules["components"]
    used = {**plan, "components": {name: plan["components"][name] for name in names}}
    c, conflicts, vectors, neighbours, outputs = signals(used, test, test_titles, COMPETITION / "test_images")
    if test_stage:
        folder = Path(paths.input_path(CONFIG["plan"])).parent if CONFIG["plan"] else Path(".")
        phashes, image_text = list(test.image_phash), pipeline.image_text_pairs(plan["models"], outputs)
        with stopwatch.stage("pair stage: features", len(test)):  # built and scored a chunk at a time
            both, scores, scorer = pair_stage.score(
                vectors, neighbours, c, test_titles, phashes, test_stage, folder, image_text
            )
        print(f"pair stage: {len(scores)} test pairs scored by {scorer}")
        with stopwatch.stage("pair stage: graph steps", len(test)):
            matches = graph.apply(both, scores, test_stage["graph"])
    else:
        with stopwatch.stage("matching rules", len(test)):
            matches = pairs.to_lists(c, pairs.predict(c, test_rules, conflicts))
    return pairs.to_posting_ids(matches, test.posting_id)


# %% [markdown]
# ## Submission by the plan
# If anything fails, the fallback submission stays and the failure is recorded in run_status.json; the scoring rerun
# goes on with the fallback, the commit run stops with the error (a submission of it would score the fallback).

# %%
status = {"fallback": False}
try:
    plan, test_rules, test_stage, title_tuning = plan_for_test()
    if CV_MODE:
        report = evaluate()
        with open("cv_scores.json", "w") as file:
            json.dump(report, file, indent=2)
        for name, score in report["f1"].items():
            print(f"CV F1 {name:>12}: {score:.4f}   (optimiser: {report['optimiser_f1'].get(name, float('nan')):.4f})")
        for name, score in report["ablation"].items():
            print(f"ablation {name:>32}: {score:.4f}")
    write_submission("submission.csv", test.posting_id, match_test())
    validate_submission("submission.csv", test.posting_id)
    print(f"submission.csv by the plan ({'pair stage' if test_stage else 'rules'}): {len(test)} rows")
except Exception as error:  # the fallback submission stays; the failure is shown (once) and recorded
    status = {"fallback": True, "error": f"{type(error).__name__}: {error}"}
    print(f"FAILED, the fallback submission (TF-IDF and identical titles) is kept: {status['error']}")
    if CV_MODE:
        print("the commit run stops here: fix the plan before submitting (the scoring rerun would keep the fallback)")
        raise
    traceback.print_exc()
finally:
    with open("run_status.json", "w") as file:
        json.dump(status, file, indent=2)
plt.show()

# %% [markdown]
# ## Time budget
# Each stage's time here, projected by its kind to its rows on the hidden rerun (70,000 test postings; the plan's rows
# of the full train), on this device and on a T4 (lib/inference/time_budget.py; docs/inference.md says how, with its
# sources). The commit run's 3 test rows (or any test of fewer than 100) are too few to project from, so there the
# stages on the plan's rows stand for the test stages. A plan projected over time_budget.BUDGET_SHARE of the limit on a
# T4 stops the commit run, naming its largest stages; the scoring rerun prints it.

# %%
device = default_device()
PROJECTED, LEFT_OUT = time_budget.hidden_rerun(stopwatch.stages, len(test))
RATES = time_budget.measured_rates(PROJECTED, device)
BASIS = time_budget.projection_basis(len(test), LEFT_OUT)
print(BASIS)
print(time_budget.table(PROJECTED, RATES))
time_budget.write_timings("timings.json", PROJECTED, RATES, device, BASIS)
print(f"peak memory so far (GB): {time_budget.peak_memory_gb(device)}")
time_budget.refuse_over_budget(PROJECTED, RATES, CV_MODE)
