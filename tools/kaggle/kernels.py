"""Pushing kernels after their pre-flight (tools.kaggle.preflight): the inference kernel, the optimiser, one
training kernel per experiment; a GPU kernel's push reads the weekly GPU quota first."""

import csv
import io
import json
import re
import tempfile
from pathlib import Path

import yaml

import build
from lib.data.competition import COMPETITION
from tools.kaggle.cli import DeliveryError, kaggle
from tools.kaggle.paths import LOCAL_DATASETS, PUSH_RECORD, TRAIN
from tools.kaggle.preflight import check_experiment, preflight, smoke_competition, smoke_experiment
from tools.local import optimize
from tools.local.variants import plan_kernel, write_variant

EXPERIMENT_NAME = re.compile(r"[a-z0-9][a-z0-9-]*")


def push(build_dir: Path) -> int:
    """`kaggle kernels push` of a built folder (refused while its owner is the placeholder); returns the version Kaggle
    made, recorded in build_dir/push.json."""
    metadata = json.loads((build_dir / "kernel-metadata.json").read_text())
    ref = metadata["id"]
    if ref.startswith(build.OWNER_PLACEHOLDER):
        raise DeliveryError(
            f"{build_dir.name}: no Kaggle owner known ({ref}); set KAGGLE_USERNAME, or 'owner' in its "
            f"{build.SETTINGS_FILE}, then push again"
        )
    if metadata.get("enable_gpu"):
        print(quota())
    output = kaggle("kernels", "push", "-p", str(build_dir))
    refused = re.search(r"Kernel push error: (.*)", output)
    if refused:
        raise DeliveryError(f"Kaggle refused the push of {ref}: {refused[1]}")
    dropped = re.findall(
        r"The following are not valid (\w+ sources) and could not be added to the kernel: (.*)", output
    )
    if dropped:
        lost = "; ".join(f"{kind} {names}" for kind, names in dropped)
        raise DeliveryError(f"Kaggle dropped {lost} from {ref}, so its run cannot read them; upload them, push again")
    pushed = re.search(r"Kernel version (\d+) successfully pushed", output)
    if not pushed:
        raise DeliveryError(f"the kaggle CLI did not confirm the push of {ref} (no 'Kernel version N' line)")
    (build_dir / PUSH_RECORD).write_text(json.dumps({"id": ref, "version": int(pushed[1])}) + "\n")
    print(f"pushed {ref} version {pushed[1]}; follow it with `make status KERNEL={build_dir.name}`")
    return int(pushed[1])


def push_inference(kernels: Path, sample: Path, hidden: Path, runs: Path, build_root: Path, force: bool) -> int:
    """Pre-flight the submission kernel, attaching what the local plan reads (tools.local.variants.plan_kernel), in both
    situations unless forced, then push it."""
    return push(preflight(plan_kernel(kernels, runs, build_root), True, sample, hidden, runs, build_root, force))


def push_optimize(runs: list[str], encoders: list[str], build_root: Path) -> int:
    """Build the optimiser over training runs (their kernels attached as sources) and pretrained encoders (their
    datasets attached; tools.local.optimize) and push it: on Kaggle it writes the plan that the inference kernel
    attaches as its `optimize-ensemble` source."""
    return push(build.build_kernel(optimize.variant(runs, build_root / "variants", encoders), build_root))


def experiments(kernel_dir: Path) -> list[str]:
    """The experiment names of the training kernel (experiments/<name>.yaml)."""
    return sorted(path.stem for path in (kernel_dir / "experiments").glob("*.yaml"))


def experiment_kernel(kernel_dir: Path, experiment: str, build_root: Path, smoke: bool = False) -> Path:
    """Write build_root/experiments/<kernel>-<exp>/: the training kernel with its own slug and the experiment's values.

    The notebook's parameters cell gets `EXPERIMENT_NAME = "<exp>"` and `EXPERIMENT = {...}` (the settings of
    experiments/<exp>.yaml; tools/local/variants.py), and the kernel is pushed as slug `<slug>-<exp>`, titled
    `<title> <exp>`: one Kaggle kernel per experiment. With `smoke`, the experiment is shrunk for the pre-flight's
    local run instead (tools.kaggle.preflight.smoke_experiment; folder and slug end in -smoke), and what was shrunk is
    printed. Build errors name lines of this generated notebook.py; an input the experiment reads must be attached in
    kernel.yaml.
    """
    if not (kernel_dir / build.SETTINGS_FILE).is_file():
        raise DeliveryError(f"no {kernel_dir} yet: the training kernel is not written, so there is nothing to push")
    known = experiments(kernel_dir)
    path = kernel_dir / "experiments" / f"{experiment}.yaml"
    if not experiment or not path.is_file():
        raise DeliveryError(f"unknown experiment '{experiment}': give EXP=<name> of {path.parent}/<name>.yaml: {known}")
    if not EXPERIMENT_NAME.fullmatch(experiment):
        raise DeliveryError(f"{path}: rename it with lowercase letters, digits and '-' only (it becomes a Kaggle slug)")
    overrides = yaml.safe_load(path.read_text()) or {}
    if not isinstance(overrides, dict):
        raise DeliveryError(f"{path}: must hold `key: value` settings, not {type(overrides).__name__}")
    settings = build.read_settings(kernel_dir)
    check_experiment(overrides, str(path), settings, kernel_dir / build.SETTINGS_FILE)
    suffix = ""
    if smoke:
        overrides, shrunk, unread = smoke_experiment(overrides, str(path), LOCAL_DATASETS)
        print(f"pre-flight smoke run of {experiment} (not what is pushed), shrunk: " + "; ".join(shrunk), flush=True)
        settings["dataset_sources"] = [s for s in settings.get("dataset_sources", []) if s.split("/")[-1] not in unread]
        suffix = "-smoke"
    settings.update(slug=f"{settings['slug']}-{experiment}{suffix}", title=f"{settings['title']} {experiment}{suffix}")
    target = build_root / "experiments" / f"{kernel_dir.name}-{experiment}{suffix}"
    return write_variant(kernel_dir, target, settings, {"EXPERIMENT_NAME": experiment, "EXPERIMENT": overrides})


def push_train(kernels: Path, experiment: str, sample: Path, runs: Path, build_root: Path, force: bool) -> int:
    """Pre-flight the training kernel of one experiment (its smoke run on a few rows of the sample unless forced),
    then push it."""
    kernel_dir = experiment_kernel(kernels / TRAIN, experiment, build_root)
    from tools.kaggle.train_hours import file_report  # here: it imports torch, which the other targets do not need

    print(file_report(kernels / TRAIN / "experiments" / f"{experiment}.yaml"), flush=True)
    if force:
        return push(preflight(kernel_dir, False, sample, None, runs, build_root, force))
    smoke = experiment_kernel(kernels / TRAIN, experiment, build_root, smoke=True)
    with tempfile.TemporaryDirectory(prefix="smoke-") as tmp:
        comp = smoke_competition(sample, Path(tmp) / COMPETITION)
        return push(preflight(kernel_dir, False, comp, None, runs, build_root, force, smoke=smoke))


def quota() -> str:
    """The weekly GPU hours left on Kaggle (`kaggle quota`), as a line; refuses a push when none is left."""
    rows = list(csv.DictReader(io.StringIO(kaggle("quota", "--csv"))))
    gpu = next((row for row in rows if row.get("resource") == "GPU"), None)
    if gpu is None:
        raise DeliveryError("`kaggle quota` listed no GPU quota; see the output above")
    line = f"GPU quota: {gpu['remaining']} left of {gpu['total']} this week (used {gpu['used']})"
    line += f"; it renews {gpu['refreshAt']}"
    if float(gpu["remaining"].rstrip("h")) <= 0:
        raise DeliveryError(f"{line}: a GPU kernel would not start; wait for the renewal")
    return line
