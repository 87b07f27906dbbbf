"""Pre-flight checks run before any push: what would fail on Kaggle is refused here, with the reason and the fix.

In order: the settings (an owner, internet off, T4s for a GPU kernel; for a submission kernel the GPU on and the
competition attached); every dataset source described in datasets-meta/; a fresh build into <build>/<name>/ with
build.py's offline checks; unless forced, local runs of the built notebook in each situation Kaggle runs it in (a
submission kernel's commit run and scoring rerun, each submission.csv validated and the rerun's time projected to a
T4; a training experiment's smoke run, shrunk to a couple of minutes on the CPU). The checks and what the smoke run
shrinks: docs/delivery.md, "The pre-flight".
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

import build
from lib.data.competition import COMPETITION, VISIBLE_TEST_ROWS

ROOT = Path(__file__).resolve().parents[2]
DATASETS_META = ROOT / "datasets-meta"
SMOKE_ROWS = 200
SMOKE_SIZE = 64
SMOKE_BACKBONE = "test_resnet"  # timm's tiny test network, the one of the demo experiment
SMOKE_TEXT_MODEL = "all-minilm-l6-v2"  # the offline MiniLM of `make datasets`, for a text model with no local copy
T4_SHAPES = {"NvidiaTeslaT4"}  # Kaggle's machine shapes with T4 GPUs (sm_75)


class PreflightError(Exception):
    """A kernel that must not be pushed; the message lists every reason and its fix."""


def planned_metadata(kernel_dir: Path) -> dict:
    """The kernel-metadata.json a build of kernel_dir would write, computed without writing anything."""
    try:
        return build.kernel_dir_metadata(kernel_dir)
    except build.BuildError as error:
        raise PreflightError(str(error)) from error


def settings_problems(metadata: dict, settings_path: Path, submission: bool) -> list[str]:
    """What is wrong with the owner, internet, GPU and competition settings of a kernel about to be pushed."""
    problems = []
    if metadata["id"].startswith(build.OWNER_PLACEHOLDER):
        problems.append(f"{settings_path}: no Kaggle owner; set KAGGLE_USERNAME or 'owner'")
    if metadata["enable_internet"] is not False:
        problems.append(f"{settings_path}: internet is on; Kaggle's scoring run has none, so it must be off")
    if metadata["enable_gpu"] and metadata.get("machine_shape") not in T4_SHAPES:
        problems.append(
            f"{settings_path}: machine_shape {metadata.get('machine_shape')} is not a T4 ({', '.join(T4_SHAPES)}): "
            "torch 2.10's cu128 wheels in Kaggle's image support sm_70 and newer, so on a P100 (sm_60) the first "
            'CUDA call fails with "no kernel image is available"; set machine_shape: NvidiaTeslaT4 or remove it'
        )
    if submission and metadata["enable_gpu"] is not True:
        problems.append(f"{settings_path}: GPU is off; set enable_gpu: true (the scoring rerun needs it for time)")
    if submission and COMPETITION not in metadata["competition_sources"]:
        problems.append(f"{settings_path}: the competition is not attached; add {COMPETITION} to competition_sources")
    return problems


def described_datasets(datasets_meta: Path, owner: str) -> dict[str, Path]:
    """`owner/slug` of each dataset described under datasets_meta (placeholder owner made real) -> its file."""
    described = {}
    for path in sorted(datasets_meta.glob("*/dataset-metadata.json")):
        ref = json.loads(path.read_text())["id"]
        described[ref.replace(f"{build.OWNER_PLACEHOLDER}/", f"{owner}/", 1)] = path
    return described


def dataset_problems(metadata: dict, settings_path: Path, datasets_meta: Path) -> list[str]:
    """Every dataset source of the kernel that datasets_meta does not describe."""
    described = described_datasets(datasets_meta, metadata["id"].split("/")[0])
    return [
        f"{settings_path}: dataset {source} is not described in {datasets_meta}; add <folder>/dataset-metadata.json "
        f"with its id ({build.OWNER_PLACEHOLDER}/<slug> for yours), or attach it as a kernel source"
        for source in metadata["dataset_sources"]
        if source not in described
    ]


def fresh_build(kernel_dir: Path, build_root: Path) -> Path:
    """Build kernel_dir into build_root/<name>/ (static offline checks included) and return that folder."""
    try:
        return build.build_kernel(kernel_dir, build_root)
    except build.BuildError as error:
        raise PreflightError(str(error)) from error


def posting_ids(comp: Path) -> list[str]:
    """The posting ids of comp/test.csv."""
    path = comp / "test.csv"
    if not path.is_file():
        raise PreflightError(f"{path}: missing; run `make sample sample-hidden` (or FORCE=1 to skip local runs)")
    return list(pd.read_csv(path, dtype=str).posting_id)


def check_situation(comp: Path, scoring: bool) -> None:
    """Refuse a competition folder that is not the situation it stands for (3 visible test rows, or more)."""
    rows = len(posting_ids(comp))
    if scoring and rows <= VISIBLE_TEST_ROWS:
        raise PreflightError(f"{comp}/test.csv: {rows} rows; the scoring rerun needs the hidden test set (--hidden)")
    if not scoring and rows != VISIBLE_TEST_ROWS:
        raise PreflightError(f"{comp}/test.csv: {rows} rows; the commit run has {VISIBLE_TEST_ROWS} (make sample)")


def local_run(name: str, comp: Path, runs: Path, build_root: Path) -> Path:
    """Run the notebook built in build_root offline on comp with tools/local/run_kernel.py; return its output folder."""
    command = [sys.executable, "-m", "tools.local.run_kernel", name, "--comp", str(comp), "--runs", str(runs)]
    if subprocess.run(command + ["--build", str(build_root)], cwd=ROOT).returncode != 0:
        raise PreflightError(
            f"the local run of {build_root / name} on {comp} failed (its output is above); fix the kernel, "
            "or push with FORCE=1 to skip the local runs"
        )
    return runs / name


def check_submission(out_dir: Path, comp: Path) -> None:
    """Refuse a run whose submission.csv is missing or invalid for comp's test postings."""
    from lib.data.submission import (
        validate_submission,  # here: lib.data.submission imports torch, slow for the other steps
    )

    path = out_dir / "submission.csv"
    if not path.is_file():
        raise PreflightError(f"{path}: the local run on {comp} wrote no submission.csv; Kaggle would not score it")
    try:
        validate_submission(path, posting_ids(comp))
    except ValueError as error:
        raise PreflightError(f"local run on {comp}: {error}") from error


def time_budget(out_dir: Path) -> str:
    """The T4 projection of a scoring-rerun run (its timings.json), stage by stage, against the GPU limit."""
    from lib.inference import time_budget  # here: lib.inference.time_budget imports torch, slow for the other steps

    path = out_dir / "timings.json"
    if not path.is_file():
        return f"time budget: {path} missing, so the kernel's time on the hidden test is not projected"
    stages, rates = time_budget.read_timings(path)
    seconds = sum(time_budget.t4_projection(stage, rates)[0] for stage in stages)
    verdict = "within" if seconds <= time_budget.GPU_LIMIT_SECONDS else "WARNING: over"
    return (
        f"time budget: {seconds / 3600:.2f} h projected on a T4 for the hidden rerun, {verdict} the "
        f"{time_budget.GPU_LIMIT_SECONDS / 3600:.0f} h limit (each stage by its kind: lib/inference/time_budget.py; "
        f"{path}):\n" + time_budget.table(stages, rates)
    )


def experiment_inputs(config: dict) -> dict[str, str]:
    """The `<slug>/<path>` inputs a resolved experiment config reads, by setting (random image weights read none)."""
    from lib.training import experiment  # here: lib.models is slow to import for the other steps

    model = config["model"]
    weights = (model.get("image") or {}).get("weights")
    found = {
        "model.image.weights": weights if weights != experiment.RANDOM_WEIGHTS else None,
        "model.text.model_dir": (model.get("text") or {}).get("model_dir"),
        "resume": config["resume"],
    }
    return {setting: value for setting, value in found.items() if value}


def check_experiment(overrides: dict, source: str, settings: dict, settings_path: Path) -> None:
    """Refuse an experiment that lib.training.experiment refuses, or that reads a source the kernel's settings do not
    attach."""
    from lib.training import experiment  # here: lib.models is slow to import for the other steps

    try:
        config = experiment.resolve(overrides, source)
    except ValueError as error:
        raise PreflightError(str(error)) from error
    declared = {s.split("/")[-1] for key in ["dataset_sources", "kernel_sources"] for s in settings.get(key, [])}
    problems = [
        f"{source}: {setting} reads '{value}', but {settings_path} does not attach '{value.split('/')[0]}'; "
        "add it to dataset_sources (described in datasets-meta/) or kernel_sources"
        for setting, value in experiment_inputs(config).items()
        if value.split("/")[0] not in declared
    ]
    if problems:
        raise PreflightError("\n  ".join(problems))


def smoke_experiment(overrides: dict, source: str, local_datasets: Path) -> tuple[dict, list[str], set[str]]:
    """The overrides of an experiment shrunk for the smoke run, what was shrunk in words, and the datasets the smoke
    run no longer reads (the backbone weights or text model it replaced by stand-ins)."""
    from lib.training import experiment  # here: lib.models is slow to import for the other steps

    config = experiment.resolve(overrides, source)
    size = min(min(config["image"]["sizes"]), SMOKE_SIZE)
    shrink = {"train": {"epochs": 1, "workers": 0}, "image": {"sizes": [size]}}
    notes = [f"train.epochs {config['train']['epochs']} -> 1", f"image.sizes {config['image']['sizes']} -> [{size}]"]
    notes.append(f"train.workers {config['train']['workers']} -> 0 (batches made in the kernel process)")
    if config["resume"]:
        shrink["resume"] = None
        notes.append(f"resume {config['resume']} -> null (a fresh start)")
    dropped = set()
    image = config["model"].get("image") or {}
    if image and image["weights"] != experiment.RANDOM_WEIGHTS and not (local_datasets / image["weights"]).is_file():
        shrink["model"] = {"image": {"backbone": SMOKE_BACKBONE, "weights": experiment.RANDOM_WEIGHTS}}
        dropped.add(image["weights"].split("/")[0])
        notes.append(
            f"model.image {image['backbone']} with weights {image['weights']} -> {SMOKE_BACKBONE} from random "
            f"weights (no local copy in {local_datasets})"
        )
    text = config["model"].get("text") or {}
    stand_in = text and text["model_dir"] != SMOKE_TEXT_MODEL
    if stand_in and not (local_datasets / text["model_dir"] / "config.json").is_file():
        shrink.setdefault("model", {})["text"] = {"model_dir": SMOKE_TEXT_MODEL}
        dropped.add(text["model_dir"].split("/")[0])
        notes.append(f"model.text {text['model_dir']} -> {SMOKE_TEXT_MODEL} (no local copy in {local_datasets})")
    return experiment.merged(overrides, shrink), notes, dropped


def smoke_competition(sample: Path, folder: Path) -> Path:
    """A competition folder in `folder`: the first whole label groups of sample/train.csv reaching SMOKE_ROWS rows,
    and links to everything else of the sample (test.csv, images)."""
    path = sample / "train.csv"
    if not path.is_file():
        raise PreflightError(f"{path}: missing; run `make sample` (or FORCE=1 to skip the smoke run)")
    train = pd.read_csv(path, dtype=str, keep_default_na=False)
    sizes = train.groupby("label_group", sort=False).size()
    groups = sizes.index[: int(np.searchsorted(sizes.cumsum().to_numpy(), SMOKE_ROWS)) + 1]
    folder.mkdir(parents=True)
    kept = train[train.label_group.isin(groups)]
    kept.to_csv(folder / "train.csv", index=False)
    print(f"pre-flight smoke run on {len(kept)} of the {len(train)} rows of {path} ({len(groups)} whole label groups)")
    for entry in sample.iterdir():
        if entry.name != "train.csv":
            (folder / entry.name).symlink_to(entry.resolve(), target_is_directory=entry.is_dir())
    return folder


def preflight(
    kernel_dir: Path,
    submission: bool,
    sample: Path,
    hidden: Path | None,
    runs: Path,
    build_root: Path,
    force: bool,
    smoke: Path | None = None,
) -> Path:
    """Every check before a push of kernel_dir; returns the fresh build folder or raises PreflightError.

    Args:
        kernel_dir: the kernel's source folder (kernel.yaml + notebook.py).
        submission: whether the kernel makes the competition submission (GPU, competition and scoring rerun).
        sample: the competition folder of the commit run (3 visible test rows).
        hidden: the competition folder of the scoring rerun (every held-out row); used when submission is true.
        runs: where the local runs write their outputs (and find kernel sources).
        build_root: where the kernel is built (build/ for `make`), and the smoke run's kernel.
        force: skip the local runs, not the checks.
        smoke: a kernel folder run locally instead of kernel_dir's build (a training experiment shrunk for a smoke
            run, with `sample` a competition folder from smoke_competition).
    """
    settings_path = kernel_dir / build.SETTINGS_FILE
    metadata = planned_metadata(kernel_dir)
    problems = settings_problems(metadata, settings_path, submission)
    problems += dataset_problems(metadata, settings_path, DATASETS_META)
    if problems:
        raise PreflightError(
            f"{kernel_dir.name}: {len(problems)} pre-flight check(s) failed:\n  " + "\n  ".join(problems)
        )
    out_dir = fresh_build(kernel_dir, build_root)
    situations = [] if force else [(sample, False)] + ([(hidden, True)] if submission else [])
    for comp, scoring in situations:
        check_situation(comp, scoring)
    local = kernel_dir if smoke is None or force else smoke
    if local != kernel_dir:
        fresh_build(local, build_root)
    for comp, scoring in situations:
        run_dir = local_run(local.name, comp, runs, build_root)
        if submission:
            check_submission(run_dir, comp)
        if scoring:
            print(time_budget(run_dir))
    runs_done = "FORCE=1, so no local run" if force else f"run locally in {len(situations)} situation(s)"
    runs_done += f" as the smoke test {build_root / local.name}" if local != kernel_dir else ""
    print(f"pre-flight: {kernel_dir.name} built, checked and {runs_done}")
    return out_dir
