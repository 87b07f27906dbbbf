"""Deliver kernels and datasets to Kaggle with the `kaggle` CLI, failing loudly where the CLI does not.

Usage (from the repository root; the make targets of make/delivery.mk wrap these; before the command,
--build DIR names the folder of builds and push records, default build/):
  python -m tools.kaggle.delivery push-inference [--sample DIR] [--hidden DIR] [--runs DIR] [--kernels DIR] [--force]
  python -m tools.kaggle.delivery push-optimize [RUN ...] [--encoders SLUG ...]
  python -m tools.kaggle.delivery push-train [EXP] [--sample DIR] [--runs DIR] [--kernels DIR] [--force]
  python -m tools.kaggle.delivery upload-weights [DATASET] [--folder DIR] [--message TEXT]
  python -m tools.kaggle.delivery wheels
  python -m tools.kaggle.delivery status KERNEL
  python -m tools.kaggle.delivery quota
  python -m tools.kaggle.delivery model-source OWNER/MODEL/FRAMEWORK/INSTANCE/VERSION [--models DIR]
  python -m tools.kaggle.delivery competition-data [--out DIR]
  python -m tools.kaggle.delivery wait KERNEL [--every SECONDS] [--out DIR]   (log saved: BUILD/<kernel>/kaggle-log.txt)
  python -m tools.kaggle.delivery output KERNEL [--out DIR]
  python -m tools.kaggle.delivery submit [--version N] [--message TEXT] [--wait SECONDS [--every SECONDS]]

KERNEL is a folder name under the build folder (its kernel-metadata.json gives owner/slug) or owner/slug itself.
Credentials are the CLI's own: an API token (KAGGLE_API_TOKEN or access_token), KAGGLE_USERNAME + KAGGLE_KEY, or
kaggle.json; the owner in every id pushed is yours (a kernel's 'owner' setting, KAGGLE_USERNAME, kaggle.json, or the
user the token belongs to) and is written only in the build folder and into temporary staging folders, never into
tracked files.
"""

import argparse
import csv
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

import yaml

import build
from tools.env import wheels as wheels_list
from tools.kaggle.preflight import (
    COMPETITION,
    DATASETS_META,
    ROOT,
    PreflightError,
    check_experiment,
    preflight,
    smoke_competition,
    smoke_experiment,
)
from tools.local import optimize
from tools.local.variants import plan_kernel, write_variant

KERNELS = ROOT / "kernels"
BUILD = ROOT / "build"
RUNS = ROOT / "runs"
SAMPLE = ROOT / "data" / "sample"
COMPETITION_DATA = ROOT / "data" / COMPETITION
LOCAL_DATASETS = ROOT / "data" / "datasets"
MODELS = ROOT / "data" / "models"  # local copies of Kaggle models, by owner/model/framework/instance/version
INFERENCE = "shopee-inference"
TRAIN = "shopee-train"
KAGGLE_CLI = Path(sys.executable).with_name("kaggle")
METADATA_FILE = "dataset-metadata.json"
PUSH_RECORD = "push.json"
SUBMISSION_FILE = "submission.csv"
FAILED_STATES = {"ERROR", "CANCEL_REQUESTED", "CANCEL_ACKNOWLEDGED"}
RUNNING_STATES = {"QUEUED", "RUNNING", "NEW_SCRIPT"}
LOG_FILE = "kaggle-log.txt"
FOLLOW_GRACE = 5.0  # seconds a kernel's log stream may take to end once Kaggle says the run ended
SCORING_FAILURES = {  # Kaggle's classes of a code submission that failed to score -> what to do next
    "Notebook Timeout": (
        "the scoring rerun ran past the competition's limit (2 h on a GPU); read each stage's T4 projection to 70,000 "
        "rows in timings.json of a local scoring run (`make sample-hidden`, then `make run COMP=data/sample-hidden` "
        "writes runs/shopee-inference/timings.json; or `make timing`), cut or speed up the slowest stages, push again"
    ),
    "Notebook Threw Exception": (
        "the kernel raised on the hidden test set; read the commit run's log (the one `make wait` saved, or `make "
        "output KERNEL=shopee-inference`), run the scoring situation locally (`make sample-hidden`, `make run "
        "COMP=data/sample-hidden`), fix what fails, push again"
    ),
    "Notebook Exceeded Allowed Compute": (
        "the rerun asked for more memory or disk than Kaggle gives, or broke a competition rule on its inputs; run "
        "`make timing` (70,000 synthetic rows) and watch its peak memory, lower batch sizes or keep fewer arrays "
        "between stages, check the attached sources, push again"
    ),
    "Submission CSV Not Found": (
        "the rerun ended without submission.csv in /kaggle/working, where the kernel must write it (a fallback first, "
        "so that a failed stage still leaves one); check that `make run COMP=data/sample-hidden` writes "
        "runs/shopee-inference/submission.csv and that every input it reads is attached on Kaggle, push again"
    ),
    "Submission Scoring Error": (
        "Kaggle could not score submission.csv (columns posting_id,matches; every test posting once, with known ids "
        "only): lib.data.submission.validate_submission checks it, as the kernel and `make run "
        "COMP=data/sample-hidden` do; fix what it reports, push again"
    ),
}
EXPERIMENT_NAME = re.compile(r"[a-z0-9][a-z0-9-]*")
WHEELS_META = DATASETS_META / "wheels"


class DeliveryError(Exception):
    """A delivery step that cannot go on; the message says why and what to do."""


class CliFailed(DeliveryError):
    """The kaggle CLI exited non-zero; `output` is what it printed."""

    def __init__(self, message: str, output: str):
        super().__init__(message)
        self.output = output

    @property
    def forbidden(self) -> bool:
        """Whether Kaggle answered 403 (the CLI prints "You don't have access to this resource" for it)."""
        return "403" in self.output or "don't have access" in self.output


def access_token() -> bool:
    """Whether the CLI has an API token: KAGGLE_API_TOKEN, or the access_token file it reads."""
    return bool(os.environ.get("KAGGLE_API_TOKEN")) or (Path.home() / ".kaggle" / "access_token").is_file()


def require_credentials() -> None:
    """Refuse, in one line, when the CLI has no credentials: an API token (KAGGLE_API_TOKEN or access_token),
    KAGGLE_USERNAME + KAGGLE_KEY, or kaggle.json. With a token alone, the owner of what is pushed comes from the API
    (the username the token belongs to), unless a kernel's `owner` setting names it."""
    if access_token():
        if not (os.environ.get("KAGGLE_USERNAME") or build.kaggle_json().get("username")):
            os.environ["KAGGLE_USERNAME"] = token_owner()
        return
    if os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY"):
        return
    if (build.kaggle_config_dir() / "kaggle.json").is_file():
        return
    raise DeliveryError(
        "no Kaggle credentials: set KAGGLE_API_TOKEN (kaggle.com > Settings > API > Generate New Token) or save it "
        "as ~/.kaggle/access_token; or set KAGGLE_USERNAME and KAGGLE_KEY, or save kaggle.json "
        f"in {build.kaggle_config_dir()}"
    )


def token_owner() -> str:
    """The username the CLI's API token belongs to (`kaggle config view`, after the CLI introspected the token)."""
    found = re.search(r"^- username: (\S+)", kaggle("config", "view"), re.M)
    if not found:
        raise DeliveryError("Kaggle did not accept the API token (no username for it); generate a new one")
    return found[1]


def cli_command(*args: str) -> list[str]:
    """The command line of the kaggle CLI with args; raise when the CLI is not installed."""
    if not KAGGLE_CLI.is_file():
        raise DeliveryError(f"{KAGGLE_CLI}: the kaggle CLI is not installed; run `make setup`")
    return [str(KAGGLE_CLI), *args]


def cli_environment() -> dict[str, str]:
    """This process's environment, with the CLI's output unbuffered so that it comes line by line."""
    return {**os.environ, "PYTHONUNBUFFERED": "1"}


def kaggle(*args: str, echo: bool = True) -> str:
    """Run the kaggle CLI, echoing its output as it comes (without `echo`, only when it fails), and return that output;
    raise if it exits non-zero."""
    command, env = cli_command(*args), cli_environment()
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env) as process:
        lines = []
        for line in process.stdout:
            if echo:
                print(line if line.endswith("\n") else line + "\n", end="", flush=True)
            lines.append(line)
    if process.returncode != 0:
        if not echo:
            print("".join(lines), end="", flush=True)
        message = f"`kaggle {' '.join(args[:2])}` exited with {process.returncode}; its output is above"
        raise CliFailed(message, "".join(lines))
    return "".join(lines)


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


def stage_dataset(folder: Path, metadata: dict, staging: Path) -> None:
    """Fill staging with links to every file of folder (sub-folders made real) and the metadata, real owner in id.

    The kaggle CLI reads linked files through their links (top-level files and files zipped by --dir-mode), so
    nothing is copied and the local folder is only read. A dataset-metadata.json of folder is replaced.
    """
    for root, _, files in os.walk(folder, followlinks=True):
        here = staging / Path(root).relative_to(folder)
        here.mkdir(parents=True, exist_ok=True)
        for name in files:
            if not (here == staging and name == METADATA_FILE):
                (here / name).symlink_to((Path(root) / name).resolve())
    (staging / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")


def dataset_names() -> list[str]:
    """The datasets described under datasets-meta/, by folder name."""
    return sorted(path.parent.name for path in DATASETS_META.glob(f"*/{METADATA_FILE}"))


def training_run_metadata(name: str) -> dict:
    """The metadata of a training kernel's output (shopee-train-<experiment>) uploaded as a weights dataset."""
    if len(name) > 50:
        raise DeliveryError(f"{name}: the dataset slug is over Kaggle's 50 characters; shorten the experiment's name")
    experiment = name.removeprefix(f"{TRAIN}-")
    return {
        "title": f"Shopee train {experiment}"[:50],
        "id": f"{build.OWNER_PLACEHOLDER}/{name}",
        "subtitle": f"Weights and CV of the Shopee training experiment {experiment}"[:80],
        "description": "Output of the shopee-train kernel: model.pt (config + weights), metrics.json, "
        "oof_embeddings.npz, plots and the MLflow run.",
        "licenses": [{"name": "other"}],
        "keywords": ["computer vision", "nlp"],
    }


def dataset_metadata(name: str) -> dict:
    """The tracked metadata of dataset `name` (its id still has the placeholder owner); a training run's output
    (shopee-train-<experiment>) is described by `training_run_metadata`."""
    path = DATASETS_META / (name or "?") / METADATA_FILE
    if not path.is_file() and name.startswith(f"{TRAIN}-"):
        return training_run_metadata(name)
    if not path.is_file():
        raise DeliveryError(f"{path}: missing; give DATASET=<one of {dataset_names()}> or describe a new one there")
    metadata = json.loads(path.read_text())
    if not metadata.get("id", "").startswith(f"{build.OWNER_PLACEHOLDER}/"):
        raise DeliveryError(f"{path}: id must be {build.OWNER_PLACEHOLDER}/<slug>; the owner is filled in at upload")
    return metadata


def upload_dataset(name: str, folder: Path | None, message: str | None) -> str:
    """Create dataset `name` on Kaggle from folder, or make a new version when it exists; returns owner/slug."""
    metadata = dataset_metadata(name)
    slug = metadata["id"].split("/", 1)[1]
    folder = folder or LOCAL_DATASETS / slug
    if not folder.is_dir() or not any(folder.iterdir()):
        raise DeliveryError(f"{folder}: no files to upload; give WEIGHTS=<folder> (e.g. one filled by `make output`)")
    ref = f"{build.kaggle_owner({})}/{slug}"
    with tempfile.TemporaryDirectory(prefix="kaggle-upload-") as tmp:
        staging = Path(tmp) / slug
        stage_dataset(folder, {**metadata, "id": ref}, staging)
        output = kaggle("datasets", "create", "-p", str(staging), "--dir-mode", "zip")
        if "is already in use" in output:
            notes = message or f"files of {os.path.relpath(folder.resolve(), ROOT)}"
            output = kaggle("datasets", "version", "-p", str(staging), "--dir-mode", "zip", "-m", notes)
    failed = re.search(r"Dataset (?:version )?creation error: (.*)", output)
    if failed or "is being created" not in output:
        raise DeliveryError(f"Kaggle did not take dataset {ref}: {failed[1] if failed else 'no confirmation'}")
    print(f"{ref}: uploaded from {folder} (left as it was)")
    return ref


def wheels() -> list[Path]:
    """Download the wheels dataset into data/datasets/<slug>/ and say how kernels install from it."""
    slug = dataset_metadata(WHEELS_META.name)["id"].split("/", 1)[1]
    python = wheels_list.image_python()
    try:
        found = wheels_list.download(wheels_list.WHEELS_LIST, LOCAL_DATASETS / slug, python)
    except wheels_list.WheelsError as error:
        raise DeliveryError(str(error)) from error
    print(f"for Python {python}, the Python of Kaggle's image (tools/env/kaggle_image.txt)")
    print(f"{len(found)} wheel(s) in {LOCAL_DATASETS / slug}; upload with `make upload-weights DATASET=wheels`")
    print(f"kernels attaching {slug} install its requirements.txt with pip --no-index in build.py's wheels cell")
    return found


def model_source(handle: str, models: Path) -> Path:
    """Download a Kaggle model's instance version (owner/model/framework/instance/version) into models/<handle>, the
    local copy that `make run` mounts where Kaggle mounts a model source; return that folder."""
    if not build.MODEL_HANDLE.fullmatch(handle or ""):
        raise DeliveryError(
            f"MODEL={handle!r}: give a Kaggle model as owner/model/framework/instance/version, e.g. "
            "google/siglip/transformers/base-patch16-256-multilingual/1 (the model's page, Variations)"
        )
    folder = models / handle
    kaggle("models", "instances", "versions", "download", handle, "-p", str(folder), "--untar", "-q")
    files = sorted(path for path in folder.rglob("*") if path.is_file())
    if not files:
        raise DeliveryError(f"Kaggle gave no files of the model {handle}; look at https://www.kaggle.com/models")
    instance = build.source_slug("model_sources", handle)
    print(f"{handle}: {len(files)} file(s) in {folder}")
    print(f"attach it in a kernel.yaml, under model_sources:\n  - {handle}")
    print(f"a plan's model or an experiment reads it by its instance: source '{instance}'")
    return folder


def kernel_ref(kernel: str, build_root: Path) -> str:
    """owner/slug of KERNEL: as given, or as last pushed from build_root/<KERNEL>/ (its push record, which outlives a
    local build into the same folder), else from the kernel-metadata.json there."""
    if "/" in kernel:
        return kernel
    if (build_root / kernel / PUSH_RECORD).is_file():
        return json.loads((build_root / kernel / PUSH_RECORD).read_text())["id"]
    path = build_root / kernel / "kernel-metadata.json"
    if not path.is_file():
        raise DeliveryError(
            f"{path}: missing; push the kernel first (make push-inference|push-train) or give owner/slug"
        )
    ref = json.loads(path.read_text())["id"]
    if ref.startswith(build.OWNER_PLACEHOLDER):
        raise DeliveryError(
            f"{path}: built without a Kaggle owner; set KAGGLE_USERNAME and rebuild, or give owner/slug"
        )
    return ref


def status(kernel: str, build_root: Path) -> str:
    """The state of the kernel's latest version on Kaggle; raise when it failed or was cancelled."""
    ref = kernel_ref(kernel, build_root)
    output = kaggle("kernels", "status", ref)
    found = re.search(r'has status "(?:KernelWorkerStatus\.)?(\w+)"', output)
    if not found:
        raise DeliveryError(f"could not read a status for {ref} in the kaggle CLI's output above")
    if found[1] in FAILED_STATES:
        reason = re.search(r'Failure message: "(.*)"', output)
        detail = reason[1] if reason else "no failure message"
        raise DeliveryError(f"{ref} ended {found[1]}: {detail}; read its log with `make output KERNEL={kernel}`")
    return found[1]


def output(kernel: str, out: Path | None, build_root: Path) -> Path:
    """Download the kernel's output files (overwriting same names) into out, default runs/<slug>; return out."""
    ref = kernel_ref(kernel, build_root)
    out = out or RUNS / ref.split("/")[1]
    downloaded = re.findall(r"Output file downloaded to (.*)", kaggle("kernels", "output", ref, "-p", str(out), "-o"))
    if not downloaded:
        raise DeliveryError(f"{ref} has no output files (its log, if any, is in {out}); check `make status`")
    slug = ref.split("/")[1]
    print(f"{len(downloaded)} output file(s) of {ref} in {out}: upload with `make upload-weights WEIGHTS={out} ...`;")
    print(f"in runs/{slug}/ they are also what local runs attach as the kernel source {slug}")
    return out


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


class LogFollower:
    """`kaggle kernels logs --follow` of a kernel in the background: each log line printed as it comes (after "  | ",
    between the status lines) and saved to a file."""

    def __init__(self, ref: str, path: Path):
        """Start the CLI on kernel `ref`, its log going to `path` (written afresh)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path, self.lines, self.errors = path, 0, ""
        command = cli_command("kernels", "logs", ref, "--follow")
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
            env=cli_environment(),
        )
        self.thread = threading.Thread(target=self._pump, daemon=True)
        self.thread.start()

    def _pump(self) -> None:
        """Print and save each line the CLI prints until the stream ends, then keep what it said on stderr."""
        with self.path.open("w", encoding="utf-8") as log:
            for line in self.process.stdout:
                log.write(line)
                log.flush()
                print(f"  | {line}", end="", flush=True)
                self.lines += 1
        self.errors = self.process.stderr.read().strip()
        self.process.wait()

    @property
    def ended(self) -> bool:
        """Whether the stream ended (the CLI exited and every line it printed is shown)."""
        return not self.thread.is_alive()

    def how_it_ended(self) -> str:
        """The end of the stream in words: ended, or failed with the CLI's exit status; the CLI's last error line
        (it exits 0 also when it gives up reconnecting)."""
        last = self.errors.splitlines()[-1] if self.errors else ""
        if self.process.returncode == 0:
            return f"its stream ended ({last})" if last else "its stream ended"
        code = self.process.returncode
        return f"its stream failed (`kaggle kernels logs --follow` exited with {code}: {last or 'no message'})"

    def stop(self, grace: float) -> bool:
        """Give the stream `grace` seconds to end by itself, else end the CLI; whether it ended by itself."""
        self.thread.join(grace)
        if self.ended:
            return True
        self.process.terminate()
        self.thread.join()
        return False


def log_path(kernel: str, build_root: Path) -> Path:
    """Where `wait` saves the kernel's log: beside its build, build_root/<folder, or slug of owner/slug>/kaggle-log.txt
    (the build folder is not tracked)."""
    return build_root / (kernel.split("/")[1] if "/" in kernel else kernel) / LOG_FILE


def end_follow(follower: LogFollower, kernel: str) -> None:
    """Let the log stream end (stopped after FOLLOW_GRACE seconds), then say where the log was saved."""
    if not follower.stop(FOLLOW_GRACE):
        how = f" (its stream had not ended {FOLLOW_GRACE:.0f} s after the run, so it was stopped)"
    elif follower.process.returncode != 0 or follower.errors:
        how = f" ({follower.how_it_ended()})"
    else:
        how = ""
    print(
        f"log of {kernel}: {follower.lines} line(s) saved to {follower.path}{how}; "
        f"the whole log comes with `make output KERNEL={kernel}`",
        flush=True,
    )


def wait(kernel: str, build_root: Path, every: float, out: Path | None) -> str:
    """Poll the kernel's status every `every` seconds, one progress line each, until it ends, showing its log as it
    comes from when it runs (`kaggle kernels logs --follow`, saved by `log_path`; a stream that ends or fails leaves
    the status lines); raise on a failure (with Kaggle's message); download its output into `out` when given."""
    started = time.monotonic()
    follower, fell_back = None, False
    try:
        while True:
            state = status(kernel, build_root)
            print(f"{kernel}: {state} after {time.monotonic() - started:.0f} s", flush=True)
            if state not in RUNNING_STATES:
                break
            if state == "RUNNING" and follower is None:
                print(f"log of {kernel}: follows as it comes, saved to {log_path(kernel, build_root)}", flush=True)
                follower = LogFollower(kernel_ref(kernel, build_root), log_path(kernel, build_root))
            elif follower is not None and follower.ended and not fell_back:
                print(
                    f"log of {kernel}: {follower.how_it_ended()} while it runs; status lines only from now on",
                    flush=True,
                )
                fell_back = True
            time.sleep(every)
    finally:
        if follower is not None:
            end_follow(follower, kernel)
    if state != "COMPLETE":
        raise DeliveryError(f"{kernel} ended {state}; read its log with `make output KERNEL={kernel}`")
    if out is not None:
        output(kernel, out, build_root)
    return state


def competition_data(out: Path) -> Path:
    """Download the competition's files through the CLI into `out`, unzipped, and check them: train.csv and test.csv
    by lib's readers (errors name the file and row), every image they name present."""
    with tempfile.TemporaryDirectory(prefix="competition-") as tmp:
        try:
            kaggle("competitions", "download", "-c", COMPETITION, "-p", tmp, "-q")
        except CliFailed as error:
            if not error.forbidden:
                raise
            raise DeliveryError(
                f"Kaggle refused the download of {COMPETITION} (403): accept its rules first at "
                f"https://www.kaggle.com/competitions/{COMPETITION}/rules (the same account as your credentials), "
                "then run `make competition-data` again"
            ) from error
        archives = list(Path(tmp).glob("*.zip"))
        if not archives:
            raise DeliveryError(f"the kaggle CLI downloaded no zip of {COMPETITION}; see its output above")
        out.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(archives[0]) as archive:
            archive.extractall(out)
    check_competition(out)
    print(f"{COMPETITION} in {out}: use it as COMP={out} (make run, make train ...)")
    return out


def check_competition(folder: Path) -> None:
    """train.csv and test.csv readable by lib's readers, and each posting's image in its images folder."""
    from lib.data.postings import read_postings

    for name, labelled in [("train", True), ("test", False)]:
        postings = read_postings(folder / f"{name}.csv", labelled=labelled)
        images = folder / f"{name}_images"
        present = {path.name for path in images.iterdir()} if images.is_dir() else set()
        missing = [(row, image) for row, image in enumerate(postings.image, start=2) if image not in present]
        if missing:
            row, image = missing[0]
            raise DeliveryError(
                f"{folder / name}.csv: {len(missing)} image(s) missing from {images}, the first {image} (line {row}); "
                "download again with `make competition-data`"
            )
        print(f"{name}.csv: {len(postings)} postings, every image present")


def last_push(build_root: Path) -> tuple[str, int]:
    """owner/slug and version of the last push of the inference kernel, from its push record in build_root."""
    record = build_root / INFERENCE / PUSH_RECORD
    if not record.is_file():
        raise DeliveryError(f"{record}: no push recorded; run `make push-inference` or give VERSION=<n>")
    pushed = json.loads(record.read_text())
    return pushed["id"], pushed["version"]


def browser_steps(ref: str, version: int) -> str:
    """How to submit a kernel version on kaggle.com when the API may not."""
    return (
        f"submit it in the browser: open https://www.kaggle.com/code/{ref}, pick 'Version {version}' in its version "
        f"list, then 'Submit to competition' ({COMPETITION}, output file {SUBMISSION_FILE})"
    )


def listed_submission(description: str) -> dict:
    """The competition's newest submission of this account with `description` (`competitions submissions`)."""
    listing = kaggle("competitions", "submissions", COMPETITION, "--csv", "-q")
    rows = [row for row in csv.DictReader(io.StringIO(listing)) if row.get("description") == description]
    if not rows:
        raise DeliveryError(
            f"Kaggle took the submission but `kaggle competitions submissions {COMPETITION}` lists none described "
            f"{description!r}; look at https://www.kaggle.com/competitions/{COMPETITION}/submissions"
        )
    return max(rows, key=lambda row: row["date"])


def submission_fields(text: str) -> dict[str, str]:
    """The `Label: value` lines `kaggle competitions submission REF` prints, by label (a value's indented further
    lines joined to it)."""
    fields: dict[str, str] = {}
    label = ""
    for line in text.splitlines():
        if line[:1].isspace() and label:
            fields[label] += "\n" + line.strip()
        elif ":" in line:
            label, value = line.split(":", 1)
            fields[label] = value.strip()
    return fields


def next_step(error: str) -> str:
    """A scoring error as its class and what to do next (SCORING_FAILURES), or as Kaggle wrote it, and where to read
    it."""
    for failure, step in SCORING_FAILURES.items():
        if failure.lower() in error.lower():
            return f"{failure}: {step}"
    return f"{error} (see https://www.kaggle.com/competitions/{COMPETITION}/submissions)"


def await_score(ref: int, name: str, wait: float, every: float) -> str:
    """Read submission `ref` (`kaggle competitions submission REF`) every `every` seconds, a line each, until Kaggle
    has scored it, and return its public score; raise when scoring failed (its class and next step), or when it is
    still pending after `wait` seconds. `name` says what was submitted."""
    started = time.monotonic()
    while True:
        output = kaggle("competitions", "submission", str(ref), echo=False)
        fields = submission_fields(output)
        state, elapsed = fields.get("Status", ""), time.monotonic() - started
        if state not in {"PENDING", "COMPLETE", "ERROR"}:
            print(output, end="")
            raise DeliveryError(f"could not read the status of submission {ref} in the kaggle CLI's output above")
        print(f"submission {ref}: {state} after {elapsed:.0f} s", flush=True)
        if state == "COMPLETE":
            return fields.get("Public Score") or "(not published)"
        if state == "ERROR":
            error = fields.get("Error") or "no error message"
            raise DeliveryError(f"submission {ref} ({name}) failed to score: {next_step(error)}")
        if elapsed + every > wait:
            raise DeliveryError(
                f"submission {ref} ({name}) is still PENDING after {elapsed:.0f} s (WAIT={wait:g}): Kaggle is still "
                f"rerunning it; read it later with `{KAGGLE_CLI} competitions submission {ref}` or at "
                f"https://www.kaggle.com/competitions/{COMPETITION}/submissions"
            )
        time.sleep(every)


def submit(version: int | None, message: str | None, build_root: Path, wait: float | None, every: float) -> int:
    """Submit a pushed version of the inference kernel (default: the last push) to the code competition and read the
    submission back; a refusal by the API (403 to some tokens) ends in the browser steps. With `wait` (seconds), then
    wait that long at most for its score (`await_score`, a read every `every` seconds)."""
    ref, version = last_push(build_root) if version is None else (kernel_ref(INFERENCE, build_root), version)
    description = message or f"{ref} version {version}"
    args = ["-k", ref, "-v", str(version), "-f", SUBMISSION_FILE, "-m", description, "-q"]
    try:
        kaggle("competitions", "submit", COMPETITION, *args)
    except CliFailed as error:
        if not error.forbidden:
            raise
        raise DeliveryError(
            f"Kaggle's API refused the code submission of {ref} version {version} (403). Either the competition's "
            f"rules are not accepted yet (https://www.kaggle.com/competitions/{COMPETITION}/rules), or, as with "
            f"some tokens, the final submit needs the browser: {browser_steps(ref, version)}"
        ) from error
    found = listed_submission(description)
    print(
        f"submitted {ref} version {version}: submission {found['ref']}, {found['status'].split('.')[-1]} "
        f"({found['date']}); Kaggle now reruns it on the hidden test set"
    )
    if wait is not None:
        score = await_score(int(found["ref"]), f"{ref} version {version}", wait, every)
        print(f"submission {found['ref']} ({ref} version {version}) scored: public score {score}")
    return int(found["ref"])


def add_push_arguments(command: argparse.ArgumentParser) -> None:
    """The options both push commands take."""
    command.add_argument("--sample", type=Path, default=SAMPLE, help="competition folder of the commit run")
    command.add_argument("--runs", type=Path, default=RUNS, help="outputs of the local runs")
    command.add_argument("--kernels", type=Path, default=KERNELS, help="folder of kernel sources")
    command.add_argument("--force", action="store_true", help="skip the local runs (not the checks)")


def parse_args() -> argparse.Namespace:
    """The command line: one sub-command per make target."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", type=Path, default=BUILD, help="folder of builds and push records")
    commands = parser.add_subparsers(dest="command", required=True)
    inference = commands.add_parser("push-inference")
    add_push_arguments(inference)
    inference.add_argument("--hidden", type=Path, default=Path(f"{SAMPLE}-hidden"), help="scoring rerun folder")
    optimiser = commands.add_parser("push-optimize")
    optimiser.add_argument("runs", nargs="*", help="slugs of pushed training kernels")
    optimiser.add_argument("--encoders", nargs="*", default=[], help="slugs of uploaded pretrained encoders")
    train = commands.add_parser("push-train")
    add_push_arguments(train)
    train.add_argument("experiment", nargs="?", default="", help="experiments/<name>.yaml of shopee-train")
    upload = commands.add_parser("upload-weights")
    upload.add_argument(
        "dataset", nargs="?", default="", help="folder name under datasets-meta/, or shopee-train-<exp>"
    )
    upload.add_argument("--folder", type=Path, help="files to upload (default data/datasets/<slug>)")
    upload.add_argument("--message", help="version notes")
    commands.add_parser("wheels")
    commands.add_parser("status").add_argument("kernel", help="folder name under the build folder, or owner/slug")
    commands.add_parser("quota")
    model = commands.add_parser("model-source")
    model.add_argument("handle", nargs="?", default="", help="owner/model/framework/instance/version")
    model.add_argument("--models", type=Path, default=MODELS, help="folder of the local copies of Kaggle models")
    commands.add_parser("competition-data").add_argument(
        "--out", type=Path, default=COMPETITION_DATA, help="folder for the competition's files"
    )
    waiting = commands.add_parser("wait")
    waiting.add_argument("kernel", help="folder name under the build folder, or owner/slug")
    waiting.add_argument("--every", type=float, default=60.0, help="seconds between status polls")
    waiting.add_argument("--out", type=Path, help="download the output here once it is complete")
    download = commands.add_parser("output")
    download.add_argument("kernel", help="folder name under the build folder, or owner/slug")
    download.add_argument("--out", type=Path, help="download folder (default runs/<slug>)")
    submission = commands.add_parser("submit")
    submission.add_argument("--version", type=int, help="kernel version (default: the last push)")
    submission.add_argument("--message", help="submission description")
    submission.add_argument("--wait", type=float, metavar="SECONDS", help="wait this long at most for the score")
    submission.add_argument("--every", type=float, default=60.0, help="seconds between reads of the submission")
    return parser.parse_args()


def main() -> int:
    """Run one sub-command; a refusal prints its reason on one line per problem and exits 1."""
    args = parse_args()
    try:
        if args.command != "wheels":
            require_credentials()
        if args.command == "push-inference":
            push_inference(args.kernels, args.sample, args.hidden, args.runs, args.build, args.force)
        elif args.command == "push-optimize":
            push_optimize(args.runs, args.encoders, args.build)
        elif args.command == "push-train":
            push_train(args.kernels, args.experiment, args.sample, args.runs, args.build, args.force)
        elif args.command == "upload-weights":
            upload_dataset(args.dataset, args.folder, args.message)
        elif args.command == "wheels":
            wheels()
        elif args.command == "status":
            print(f"{args.kernel}: {status(args.kernel, args.build)}")
        elif args.command == "quota":
            print(quota())
        elif args.command == "model-source":
            model_source(args.handle, args.models)
        elif args.command == "competition-data":
            competition_data(args.out)
        elif args.command == "wait":
            wait(args.kernel, args.build, args.every, args.out)
        elif args.command == "output":
            output(args.kernel, args.out, args.build)
        else:
            submit(args.version, args.message, args.build, args.wait, args.every)
    except (DeliveryError, PreflightError, build.BuildError) as error:
        print(f"{args.command}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
