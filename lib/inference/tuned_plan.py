"""The optimiser's plan from its search: the inference config (PLAN_FILE) and the out-of-fold pairs its gallery
correction needs (lib.inference.correction.FILE).

The plan names the components of the chosen search that it uses (the rules' components, or every component for a
second stage, which takes each one's features), their members (a source's output with its weight) and blends, the
models behind them (a training run's checkpoint, or a frozen encoder's entry), the rules, the CV they reached and the
second stage where it is used.
"""

import json
from pathlib import Path

import numpy as np

from lib.data import oof
from lib.inference import correction
from lib.inference.plan import validate_tuned_config
from lib.matching import tuning
from lib.second_stage import pair_stage

PLAN_FILE = "inference_config.json"


def components(names: list[str], title_signals: dict[str, str], weights: dict[str, dict[str, float]], blends: dict):
    """The plan's entries of the components `names`: TF-IDF by its analyzer (`title_signals`: name -> analyzer), the
    title signals first, then each model output's members (`weights`: output -> {"<source>/<output>": weight}, rounded
    to 4 places) and blend (`blends`: output -> blend or None)."""
    entries = {name: {"tfidf": {"analyzer": title_signals[name]}} for name in names if name in title_signals}
    for output in [name for name in names if name not in title_signals]:
        members = [
            {"model": name.rsplit("/", 1)[0], "output": output, "weight": round(weight, 4)}
            for name, weight in weights[output].items()
        ]
        entries[output] = {"members": members, "blend": blends[output]}
    return entries


def plan(search: tuning.Tuning, entries: dict, encoders: dict, rows: int, stage: pair_stage.Fitted | None) -> dict:
    """The inference config: the components' `entries`, their models (an encoder's entry from `encoders` by name,
    else a training run's checkpoint), the search's rules and CV on `rows` (each rule component's best F1, the
    union's), and the second `stage` where the plan uses it (its classifier at pair_stage.MODEL_FILE)."""
    models = sorted({member["model"] for part in entries.values() for member in part.get("members", [])})
    used = list(search.config["components"])
    config = {
        "models": {
            name: encoders.get(name, {"kind": "checkpoint", "source": name, "file": oof.MODEL}) for name in models
        },
        "components": entries,
        "matching": search.config,
        "cv": {
            "rows": rows,
            "f1": {**{name: float(search.curves[name].max()) for name in used}, "union": search.f1}
            | ({"pair stage": stage.f1} if stage is not None else {}),
        },
    }
    if stage is not None:
        config["pair_stage"] = {"file": pair_stage.MODEL_FILE, "features": stage.scored.names, "graph": stage.config}
    return config


def write(config: dict, search: tuning.Tuning, labels: np.ndarray, stage: pair_stage.Fitted | None, folder=".") -> None:
    """The inference config (validated) as PLAN_FILE and the out-of-fold pairs of its components (the search's, with
    the `stage`'s pair scores where the plan uses it) as correction.FILE, in `folder`."""
    validate_tuned_config(config, PLAN_FILE)
    with open(Path(folder) / PLAN_FILE, "w") as file:
        json.dump(config, file, indent=2)
    out_of_fold = correction.OutOfFold(search.candidates, search.conflicts, labels)
    if stage is not None:
        out_of_fold.stage_pairs, out_of_fold.stage_scores = stage.scored.candidates, stage.scored.scores
    correction.write(Path(folder) / correction.FILE, correction.kept(out_of_fold, list(config["components"])))
