"""Deliver kernels and datasets to Kaggle with the `kaggle` CLI, failing loudly where the CLI does not.

Usage: python -m tools.kaggle.delivery [--build DIR] COMMAND [OPTIONS]   (from the repository root; `COMMAND --help`
       lists its options; the make targets of make/delivery.mk wrap each command)

--build names the folder of builds and push records (default build/). KERNEL is a folder name under it (its
kernel-metadata.json gives owner/slug) or owner/slug itself. Credentials are the CLI's own; the owner in every id
pushed is written only in the build folder and in temporary staging folders, never into tracked files. The targets,
credentials and the CLI's behaviour: docs/delivery.md.
"""

import argparse
import sys
from pathlib import Path

import build
from tools.kaggle import competition, credentials, datasets, kernel_runs, kernels, submission
from tools.kaggle.cli import DeliveryError
from tools.kaggle.paths import BUILD, COMPETITION_DATA, KERNELS, MODELS, RUNS, SAMPLE
from tools.kaggle.preflight import PreflightError


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
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    inference = commands.add_parser("push-inference", help="pre-flight, then push shopee-inference")
    add_push_arguments(inference)
    inference.add_argument("--hidden", type=Path, default=Path(f"{SAMPLE}-hidden"), help="scoring rerun folder")
    optimiser = commands.add_parser("push-optimize", help="push the optimiser over training kernels and encoders")
    optimiser.add_argument("runs", nargs="*", help="slugs of pushed training kernels")
    optimiser.add_argument("--encoders", nargs="*", default=[], help="slugs of uploaded pretrained encoders")
    train = commands.add_parser("push-train", help="pre-flight, then push an experiment's training kernel")
    add_push_arguments(train)
    train.add_argument("experiment", nargs="?", default="", help="experiments/<name>.yaml of shopee-train")
    upload = commands.add_parser("upload-weights", help="create or version a dataset")
    upload.add_argument(
        "dataset", nargs="?", default="", help="folder name under datasets-meta/, or shopee-train-<exp>"
    )
    upload.add_argument("--folder", type=Path, help="files to upload (default data/datasets/<slug>)")
    upload.add_argument("--message", help="version notes")
    commands.add_parser("wheels", help="download the wheels for Kaggle's image")
    commands.add_parser("status", help="a kernel's status; fails on ERROR or a cancel").add_argument(
        "kernel", help="folder name under the build folder, or owner/slug"
    )
    commands.add_parser("quota", help="the weekly GPU hours left")
    model = commands.add_parser("model-source", help="a Kaggle model's files for local runs")
    model.add_argument("handle", nargs="?", default="", help="owner/model/framework/instance/version")
    model.add_argument("--models", type=Path, default=MODELS, help="folder of the local copies of Kaggle models")
    commands.add_parser("competition-data", help="the competition's files, checked").add_argument(
        "--out", type=Path, default=COMPETITION_DATA, help="folder for the competition's files"
    )
    waiting = commands.add_parser("wait", help="follow a run to its end; its log in BUILD/<kernel>/kaggle-log.txt")
    waiting.add_argument("kernel", help="folder name under the build folder, or owner/slug")
    waiting.add_argument("--every", type=float, default=60.0, help="seconds between status polls")
    waiting.add_argument("--out", type=Path, help="download the output here once it is complete")
    download = commands.add_parser("output", help="download a kernel's outputs")
    download.add_argument("kernel", help="folder name under the build folder, or owner/slug")
    download.add_argument("--out", type=Path, help="download folder (default runs/<slug>)")
    submission = commands.add_parser("submit", help="submit the last pushed inference version")
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
            credentials.require_credentials()
        if args.command == "push-inference":
            kernels.push_inference(args.kernels, args.sample, args.hidden, args.runs, args.build, args.force)
        elif args.command == "push-optimize":
            kernels.push_optimize(args.runs, args.encoders, args.build)
        elif args.command == "push-train":
            kernels.push_train(args.kernels, args.experiment, args.sample, args.runs, args.build, args.force)
        elif args.command == "upload-weights":
            datasets.upload_dataset(args.dataset, args.folder, args.message)
        elif args.command == "wheels":
            datasets.wheels()
        elif args.command == "status":
            print(f"{args.kernel}: {kernel_runs.status(args.kernel, args.build)}")
        elif args.command == "quota":
            print(kernels.quota())
        elif args.command == "model-source":
            datasets.model_source(args.handle, args.models)
        elif args.command == "competition-data":
            competition.competition_data(args.out)
        elif args.command == "wait":
            kernel_runs.wait(args.kernel, args.build, args.every, args.out)
        elif args.command == "output":
            kernel_runs.output(args.kernel, args.out, args.build)
        else:
            submission.submit(args.version, args.message, args.build, args.wait, args.every)
    except (DeliveryError, PreflightError, build.BuildError) as error:
        print(f"{args.command}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
