"""make first-submission: from credentials to a scored leaderboard submission without training, one step at a time.

Usage: python -m tools.kaggle.first_submission [--models MODEL ...] [--force] [--wait SECONDS] [--every SECONDS]
       [--build DIR] [--sample DIR] [--hidden DIR]

The steps: the competition's data, the pretrained encoders, the wheels, their uploads, the optimiser over the encoders,
the inference kernel (its pre-flight runs it here unless --force), the submission and, with --wait, its score. A step
that Kaggle or the pre-flight refuses stops the command with its reason; running it again goes on from that step
(BUILD/first-submission.json records the finished steps). Each step: docs/delivery.md, "A first submission in one
command".
"""

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import build
from tools.data import pretrained
from tools.kaggle import cli, competition, credentials, datasets, kernel_runs, kernels, paths, submission
from tools.kaggle.preflight import PreflightError
from tools.local.optimize import DATASETS_META, ENCODER_FILE
from tools.local.variants import PLAN_SOURCE

STATE_FILE = "first-submission.json"
# Frozen encoders of the first plan: a multilingual sentence model and a multilingual image-text model (the titles are
# Indonesian and English): multilingual-e5 (arXiv 2402.05672) and SigLIP's multilingual checkpoint (arXiv 2303.15343).
MODELS = ["hf:intfloat/multilingual-e5-small", "hf:google/siglip-base-patch16-256-multilingual"]


@dataclass
class Steps:
    """What the steps share: the command's options and the state they record."""

    models: list[str]
    build_root: Path
    sample: Path
    hidden: Path
    force: bool
    wait: float | None
    every: float
    state: dict

    @property
    def encoders(self) -> list[str]:
        """The dataset slugs of the models (as make pretrained names them)."""
        return [pretrained.slug_of(model.partition(":")[2].split("/")[-1]) for model in self.models]

    def record(self, **found) -> None:
        """Keep what a step found in the state file."""
        self.state |= found
        (self.build_root / STATE_FILE).write_text(json.dumps(self.state, indent=2) + "\n")


def competition_data(steps: Steps) -> None:
    """The competition's files in data/shopee-product-matching, downloaded unless they are there and check out."""
    folder = paths.COMPETITION_DATA
    if (folder / "train.csv").is_file():
        competition.check_competition(folder)
    else:
        competition.competition_data(folder)


def encoders(steps: Steps) -> None:
    """Each model fetched here as a dataset with its plan entry, unless make pretrained wrote it already."""
    for model, slug in zip(steps.models, steps.encoders):
        if (DATASETS_META / slug / ENCODER_FILE).is_file() and (paths.LOCAL_DATASETS / slug).is_dir():
            print(f"{model}: in {paths.LOCAL_DATASETS / slug} already")
        else:
            pretrained.pretrained(model, paths.LOCAL_DATASETS, DATASETS_META)


def wheels(steps: Steps) -> None:
    """The wheels Kaggle's image lacks, downloaded for its Python."""
    datasets.wheels()


def uploads(steps: Steps) -> None:
    """Each encoder and the wheels uploaded as datasets (created, or a new version), each recorded when done."""
    for name in [*steps.encoders, datasets.WHEELS_META.name]:
        if name not in steps.state.get("uploaded", []):
            datasets.upload_dataset(name, None, "make first-submission")
            steps.record(uploaded=[*steps.state.get("uploaded", []), name])


def push_optimiser(steps: Steps) -> None:
    """The optimiser over the encoders alone, pushed."""
    kernels.push_optimize([], steps.encoders, steps.build_root)


def optimiser_run(steps: Steps) -> None:
    """The optimiser's run on Kaggle, waited for, and its output (the plan) downloaded into runs/optimize-ensemble."""
    kernel_runs.wait(PLAN_SOURCE, steps.build_root, steps.every, paths.RUNS / PLAN_SOURCE)


def push_inference(steps: Steps) -> None:
    """The inference kernel attaching what the plan reads, pre-flighted (unless forced) and pushed."""
    kernels.push_inference(paths.KERNELS, steps.sample, steps.hidden, paths.RUNS, steps.build_root, steps.force)


def inference_run(steps: Steps) -> None:
    """The inference kernel's commit run on Kaggle, waited for."""
    kernel_runs.wait(paths.INFERENCE, steps.build_root, steps.every, None)


def submit(steps: Steps) -> None:
    """The pushed version submitted to the competition, and with --wait its score read back."""
    submission.submit(None, "make first-submission", steps.build_root, steps.wait, steps.every)


STEPS: list[tuple[str, Callable[[Steps], None]]] = [
    ("the competition's data", competition_data),
    ("the pretrained encoders, fetched here", encoders),
    ("the wheels for Kaggle's image", wheels),
    ("the encoders and the wheels as Kaggle datasets", uploads),
    ("the optimiser over the encoders, pushed", push_optimiser),
    ("the optimiser's run on Kaggle, and its plan", optimiser_run),
    ("the inference kernel with the plan, pre-flighted and pushed", push_inference),
    ("the inference kernel's commit run on Kaggle", inference_run),
    ("the submission", submit),
]


def read_state(build_root: Path, models: list[str]) -> dict:
    """The steps finished by an earlier run for these models (none for other models, or none recorded)."""
    path = build_root / STATE_FILE
    state = json.loads(path.read_text()) if path.is_file() else {}
    if state and state.get("models") != models:
        print(f"{path}: recorded for the models {state.get('models')}, not {models}: starting over")
        state = {}
    return state or {"models": models, "done": []}


def run(steps: Steps) -> None:
    """Every step not finished yet, in order, each announced; raise on the first that is refused."""
    for number, (name, step) in enumerate(STEPS, start=1):
        if name in steps.state["done"]:
            print(f"[{number}/{len(STEPS)}] {name}: done before", flush=True)
            continue
        print(f"[{number}/{len(STEPS)}] {name} ...", flush=True)
        step(steps)
        steps.record(done=[*steps.state["done"], name])
    print(f"first submission made; {steps.build_root / STATE_FILE} records its steps (delete it to start over)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=MODELS, help="make pretrained's MODEL of each encoder")
    parser.add_argument("--force", action="store_true", help="skip the pre-flight's local runs (not its checks)")
    parser.add_argument("--wait", type=float, help="seconds to wait at most for the submission's score")
    parser.add_argument("--every", type=float, default=60.0, help="seconds between reads of a status on Kaggle")
    parser.add_argument("--build", type=Path, default=paths.BUILD, help="folder of builds, pushes and the state")
    parser.add_argument("--sample", type=Path, default=paths.SAMPLE, help="competition folder of the commit run")
    parser.add_argument("--hidden", type=Path, default=Path(f"{paths.SAMPLE}-hidden"), help="of the scoring rerun")
    args = parser.parse_args()
    args.build.mkdir(parents=True, exist_ok=True)
    state = read_state(args.build, args.models)
    steps = Steps(args.models, args.build, args.sample, args.hidden, args.force, args.wait, args.every, state)
    try:
        credentials.require_credentials()
        run(steps)
    except (cli.DeliveryError, PreflightError, build.BuildError, ValueError, OSError) as error:
        print(f"first-submission: {error}", file=sys.stderr)
        print("fix that, then run `make first-submission` again: it goes on from this step", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
