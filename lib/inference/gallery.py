"""The plan the inference kernel matches its test by, fitted to the test's gallery.

A tuned plan (the optimiser's inference_config.json in an attached source) comes with the out-of-fold pairs it was
tuned on (lib.inference.correction); without one, the title plan is tuned on train here (lib.inference.title_plan).
Either way its thresholds (and its second stage's graph steps) are searched again for the size of the test gallery
(a gallery ten times larger holds more close false neighbours), and written to CONFIG_FILE. Stages on the rows the plan
was tuned on keep their rows in the rerun: the same share of Kaggle's train, or the title plan's sample of it.
"""

import json
from dataclasses import dataclass
from pathlib import Path

from lib.data import paths
from lib.inference import correction, title_plan
from lib.inference.plan import read_tuned_config
from lib.inference.stopwatch import Stopwatch
from lib.inference.time_budget import KAGGLE_TRAIN_ROWS

CONFIG_FILE = "matching_config.json"


@dataclass
class ForTest:
    """A plan and its fit to a test gallery.

    Attributes:
        plan: the plan (lib.inference.plan), its rules as tuned.
        rows: the test gallery's rows the rules and stage are fitted to.
        rules: the plan's rules fitted to them; stage: its second stage fitted to them, or None without one.
        folder: where the plan's files (its stage's classifier) are.
        tuning: the title plan's tuning on train (None for a tuned plan).
    """

    plan: dict
    rows: int
    rules: dict
    stage: dict | None
    folder: Path
    tuning: title_plan.OnTrain | None


def read_plan(path: Path, train_rows: int, stopwatch: Stopwatch) -> tuple[dict, correction.OutOfFold]:
    """The tuned plan at `path` and the out-of-fold parts the optimiser left beside it; reading them is timed at the
    plan's rows' share of Kaggle's train (of `train_rows` here)."""
    plan = read_tuned_config(path)
    with stopwatch.phase("plan", round(KAGGLE_TRAIN_ROWS * plan["cv"]["rows"] / train_rows)):
        with stopwatch.stage("read the plan's out-of-fold pairs", plan["cv"]["rows"]):
            return plan, correction.read(path.parent / correction.FILE)


def plan_for_test(
    source: str | None,
    train,
    train_titles: list[str],
    image_dir: Path,
    corpus: list[str],
    settings: dict,
    test_rows: int,
    stopwatch: Stopwatch,
) -> ForTest:
    """The plan at `source` (a path in an attached source; None: the title plan tuned on `train`, its normalised
    `train_titles` and images in `image_dir`, by lib.inference.title_plan.tune_on_train with `corpus` and `settings`),
    its rules and second stage fitted to a gallery of `test_rows`, written to CONFIG_FILE."""
    if source:
        path = Path(paths.input_path(source))
        plan, out_of_fold = read_plan(path, len(train), stopwatch)
        folder, tuning = path.parent, None
        on_kaggle = round(KAGGLE_TRAIN_ROWS * len(out_of_fold.labels) / len(train))
    else:
        tuning = title_plan.tune_on_train(train, train_titles, image_dir, corpus, settings, stopwatch)
        plan, out_of_fold, folder, on_kaggle = tuning.plan, tuning.out_of_fold, Path("."), title_plan.KAGGLE_ROWS
    with stopwatch.phase("plan", on_kaggle):
        with stopwatch.stage("fit to the test gallery", len(out_of_fold.labels)):
            rules, stage = correction.for_test(out_of_fold, plan, test_rows)
    with open(CONFIG_FILE, "w") as file:
        fitted = {"rows": test_rows, "rules": rules, "pair_stage": stage}
        json.dump({"plan": plan["matching"], "for_the_test_gallery": fitted}, file, indent=2)
    print(f"the plan's rules for a gallery of {test_rows}: {rules['components']}")
    return ForTest(plan, test_rows, rules, stage, folder, tuning)
