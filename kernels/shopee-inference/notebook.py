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
# Safe on the hidden rerun: a TF-IDF submission is written first and kept if a later stage fails (the failure is printed
# and recorded in run_status.json); in the commit run the same failure also stops the notebook, so that it is seen
# before submitting. Unreadable images are replaced (lib.data.images); every stage is timed once and projected by its
# kind to 70,000 rows on a T4 (timings.json, lib/inference/time_budget.py), and a plan projected over
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

import matplotlib.pyplot as plt

from lib.data import competition, paths, text
from lib.data.postings import read_postings
from lib.data.submission import validate_submission, write_submission
from lib.devices import default_device
from lib.inference import evaluation, fallback, gallery, matches, time_budget
from lib.inference.stopwatch import Stopwatch
from lib.matching import pairs

# %% [markdown]
# ## The data
# The competition's postings, and which of Kaggle's two runs this is.

# %%
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
# TF-IDF neighbours of the titles and identical titles, written before any model runs. Every later step runs through
# `steps.run` (lib.inference.fallback): if one fails, the fallback submission stays and the failure is recorded in
# run_status.json; the scoring rerun goes on with the fallback, the commit run stops with the error (a submission of it
# would score the fallback).

# %%
fallback_matches = fallback.fallback_matches(test_titles, corpus, CONFIG["fallback_tfidf_threshold"], stopwatch)
write_submission("submission.csv", test.posting_id, pairs.to_posting_ids(fallback_matches, test.posting_id))
validate_submission("submission.csv", test.posting_id)
print(f"fallback submission.csv written ({len(test)} rows)")
steps = fallback.Steps(commit_run=CV_MODE)

# %% [markdown]
# ## The plan, and its fit to the test gallery
# A tuned plan comes with the out-of-fold pairs it was tuned on (correction.npz, from the optimiser). The default
# title plan is tuned here on train (nothing is trained on it), on a seeded sample of whole label groups that bounds
# its time (lib.inference.title_plan), by the optimiser's search, which may switch a component or rule off, and fits
# its second stage there. Either way the thresholds (and the stage's graph steps) are then searched again for the size
# of the test gallery (lib.inference.gallery): a gallery ten times larger holds more close false neighbours.

# %%
TRAIN_IMAGES, TEST_IMAGES = COMPETITION / "train_images", COMPETITION / "test_images"
fitted = steps.run(
    gallery.plan_for_test, CONFIG["plan"], train, train_titles, TRAIN_IMAGES, corpus, CONFIG, TARGET_ROWS, stopwatch
)

# %% [markdown]
# ## Evaluation (the commit run only)
# A tuned plan is scored on the out-of-fold rows of its models, recomputed here from the checkpoints as on the test
# (so CV checks this very path); its second stage's classifier is trained again by group k-fold on these rows, which
# gives each pair an out-of-fold probability. The title plan is scored on train, where it was tuned. The scoring rerun
# skips this: it changes nothing it submits.

# %%
if CV_MODE:
    report = steps.run(evaluation.evaluate, fitted, train, TRAIN_IMAGES, corpus, CONFIG, stopwatch)
    with open("cv_scores.json", "w") as file:
        json.dump(report, file, indent=2)
    print(evaluation.summary(report))
    plt.show()
else:
    print("the scoring rerun skips the evaluation")

# %% [markdown]
# ## Matching the test
# The plan's stages on the test postings: only the components its fitted rules use, or all of them for a second stage.

# %%
test_matches = steps.run(matches.match_test, fitted, test, test_titles, TEST_IMAGES, corpus, CONFIG, stopwatch)

# %% [markdown]
# ## Submission by the plan
# It replaces the fallback submission; run_status.json records whether the fallback stays, and why.

# %%
steps.run(write_submission, "submission.csv", test.posting_id, test_matches)
steps.run(validate_submission, "submission.csv", test.posting_id)
status = steps.finish()
if not status["fallback"]:
    print(f"submission.csv by the plan ({'pair stage' if fitted.stage else 'rules'}): {len(test)} rows")

# %% [markdown]
# ## Time budget
# Each stage's time here, projected by its kind to its rows on the hidden rerun (70,000 test postings; the plan's rows
# of the full train), on this device and on a T4 (lib/inference/time_budget.py says how, with its sources). The commit
# run's 3 test rows (or any test of fewer than 100) are too few to project from, so there the stages on the plan's rows
# stand for the test stages. A plan projected over time_budget.BUDGET_SHARE of the limit on a T4 stops the commit run,
# naming its largest stages; the scoring rerun prints it.

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
