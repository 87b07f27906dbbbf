"""Run a built kernel locally as Kaggle would: a real Jupyter kernel, an empty working folder, no network.

Usage: python -m tools.local.run_kernel KERNEL [--comp COMP] [--build BUILD] [--runs RUNS] [--source] [--layout flat]

The built kernel is read from BUILD/<KERNEL>/ (default build/). Its sources are mounted under a temporary
/kaggle/input where current Kaggle workers mount them (--layout flat: each at <slug>): the competition COMP (default
data/sample), datasets from data/datasets/<slug> (or --datasets DIR), kernel sources from RUNS/<slug> (default runs/).
Outputs land in RUNS/<KERNEL>/ (or --output); --source runs kernels/KERNEL/notebook.py as a plain script, into
RUNS/<KERNEL>-source/. How a run is laid out and shown (`make run`, `make run-source`): docs/kernels.md, "`make run`".
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from build import SETTINGS_FILE, mount_places, source_slug
from lib.data.competition import RERUN_VARIABLE
from tools.local.kernel_console import LIB_FOLDER, Console, StreamingClient, failure_report

ROOT = Path(__file__).resolve().parents[2]

INSIDE_FLAG = "--inside-namespace"
STATUS = "run_status.json"  # written by the inference kernel: whether it kept its fallback submission
LAYOUTS = ("nested", "flat")
DATASETS = ROOT / "data" / "datasets"  # the local copy of each dataset a kernel attaches, by slug
MODELS = ROOT / "data" / "models"  # the local copy of each Kaggle model, by owner/model/framework/instance/version
RUNNING, FAILED = ".running", ".failed"  # suffixes of a run's folder while it runs, and once it failed


class RunError(Exception):
    """A run that cannot start or that failed; the message says what to do."""


def source_folders(
    metadata: dict, comp: Path, runs: Path, missing_ok: bool = False, datasets: Path = DATASETS
) -> dict[str, Path]:
    """The local folder of each source the kernel declares, by the slug it has under /kaggle/input; RunError when one
    is missing (with missing_ok: each missing one is printed and left out), or when comp holds no train.csv."""
    if metadata["competition_sources"] and not (comp / "train.csv").is_file():
        raise RunError(f"{comp}: no train.csv; a competition folder is laid out like data/sample (`make sample`)")
    folders = {slug: comp for slug in metadata["competition_sources"]}
    for source in metadata["dataset_sources"]:
        slug = source.split("/")[-1]
        folders[slug] = datasets / slug
    for source in metadata["kernel_sources"]:
        slug = source.split("/")[-1]
        folders[slug] = runs / slug
    for source in metadata.get("model_sources", []):
        folders[source_slug("model_sources", source)] = MODELS / source
    for slug, folder in list(folders.items()):
        if not folder.is_dir():
            made_by = "`make sample` / `make datasets`"
            if folder.is_relative_to(MODELS):
                made_by = f"`make model-source MODEL={folder.relative_to(MODELS)}`"
            if folder.parent == runs:
                made_by = (
                    "the kernel whose output it is (`make train EXP=<exp>` for shopee-train-<exp>, `make optimize`)"
                )
            problem = f"{folder}: missing local copy of source '{slug}'; run {made_by}"
            if not missing_ok:
                raise RunError(problem)
            print(f"left out: {problem}", file=sys.stderr)
            del folders[slug]
    return folders


def mount_points(metadata: dict, layout: str) -> dict[str, str]:
    """Where each declared source is mounted under /kaggle/input, by slug: <kind>/<owner>/<slug> (competitions/<slug>)
    in the nested layout, <slug> in the flat one."""
    places = mount_places(metadata)
    return {slug: slug for slug in places} if layout == "flat" else places


def input_tree(folders: dict[str, Path], places: dict[str, str], root: Path | None = None) -> Path:
    """A folder standing in for /kaggle/input (root, made here, or a new temporary one): a link to each source's
    folder at its place."""
    root = root or Path(tempfile.mkdtemp(prefix="kaggle-input-"))
    root.mkdir(parents=True, exist_ok=True)
    for slug, folder in folders.items():
        link = root / places[slug]
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(folder.resolve(), target_is_directory=True)
    return root


def kaggle_input(
    metadata: dict,
    comp: Path,
    runs: Path,
    layout: str = "nested",
    root: Path | None = None,
    missing_ok: bool = False,
    datasets: Path = DATASETS,
) -> Path:
    """/kaggle/input for a kernel of this metadata laid out in root (default: a new temporary folder), its sources
    from comp, data/datasets/ and runs: the one layout of `make run` and `make lab`."""
    folders = source_folders(metadata, comp, runs, missing_ok, datasets)
    return input_tree(folders, mount_points(metadata, layout), root)


def network_isolation() -> tuple[list[str], str]:
    """The command prefix that cuts the network off (if this machine allows it) and a sentence saying which."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return [], "network NOT disabled: unshare or ip is not installed"
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        return [], f"network NOT disabled: unshare -n refused ({probe.stderr.strip() or 'needs root'})"
    return ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh"], "network disabled (unshare -n)"


def kernel_environment(input_root: Path, scratch: Path) -> dict[str, str]:
    """The environment of the kernel process: inputs mapped, lib not importable, Jupyter state kept in scratch."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key != "PYTHONPATH" and (not key.startswith("KAGGLE_") or key == RERUN_VARIABLE)
    }
    env.update(
        KERNEL_INPUT_DIR=str(input_root),
        IPYTHONDIR=str(scratch / "ipython"),
        JUPYTER_CONFIG_DIR=str(scratch / "jupyter"),
        JUPYTER_DATA_DIR=str(scratch / "jupyter-data"),
        MPLCONFIGDIR=str(scratch / "matplotlib"),
        TMPDIR=str(scratch),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        # tqdm.auto asks for ipywidgets in a Jupyter kernel; a kernel run as a batch job shows text bars anyway
        PYTHONWARNINGS="ignore:IProgress not found",
        PYDEVD_DISABLE_FILE_VALIDATION="1",  # ipykernel 6's debugger warns of frozen modules at every start otherwise
    )
    return env


def shown(path: Path) -> str:
    """A path as a user knows it: relative to the current folder when under it."""
    path = Path(path).resolve()
    return os.path.relpath(path) if path.is_relative_to(Path.cwd()) else str(path)


def local_paths(input_root: Path) -> dict[str, str]:
    """Each source's place under the stand-in /kaggle/input, by the local folder it links to (relative to the current
    folder where it is under it): what a user knows the files by."""
    found = {}
    for folder, names, _ in os.walk(input_root):
        for name in names:
            link = Path(folder) / name
            if link.is_symlink():
                found[str(link)] = shown(link)
    return found


def path_translator(input_root: Path):
    """A function rewriting a line of the kernel's output: local folders for the sources' temporary places, lib/ for
    the built notebook's temporary copy of it."""
    places = sorted(local_paths(input_root).items(), key=lambda item: -len(item[0]))

    def translate(line: str) -> str:
        for place, local in places:
            line = line.replace(place, local)
        return LIB_FOLDER.sub("", line)

    return translate


def execute_notebook(notebook_path: Path, out_dir: Path, timeout: int, input_root: Path) -> None:
    """Execute a notebook in out_dir, its outputs shown as they come (tools.local.kernel_console), saving the executed
    copy there even when a cell fails; RunError with a short report of the failure."""
    import nbformat
    from nbclient.exceptions import CellExecutionError

    notebook = nbformat.read(notebook_path, as_version=4)
    translate = path_translator(input_root)
    resources = {"metadata": {"path": str(out_dir)}}
    options = {"kernel_name": "python3", "timeout": timeout, "resources": resources}
    client = StreamingClient(notebook, Console(translate=translate), **options)
    saved = out_dir / notebook_path.name
    try:
        client.execute()
    except CellExecutionError as error:
        sources = sorted((ROOT / "kernels").glob("*/notebook.py"))
        report = failure_report(notebook, sources, ROOT)
        raise RunError(translate(report)) from error
    finally:
        nbformat.write(notebook, saved)


def run_inside(args: argparse.Namespace) -> None:
    """The run itself, in the (possibly network-less) process: environment, then the notebook or the script."""
    out_dir, input_root = Path(args.out), Path(args.input_root)
    with tempfile.TemporaryDirectory(prefix="kernel-scratch-") as scratch:
        run_with_environment(args, out_dir, kernel_environment(input_root, Path(scratch)))


# The script's code run as a Jupyter kernel runs a notebook's cells: in a __main__ without a file, which loader
# workers (lib.data.dataset.LOADER_START) do not import again; `python notebook.py` would have each worker re-run it.
AS_IN_A_NOTEBOOK = "import sys; path = sys.argv[1]; exec(compile(open(path).read(), path, 'exec'))"


def run_with_environment(args: argparse.Namespace, out_dir: Path, env: dict[str, str]) -> None:
    """Run the script or the built notebook with the kernel's environment."""
    if args.source:
        env["PYTHONPATH"] = str(ROOT)
        script = ROOT / "kernels" / args.kernel / "notebook.py"
        if subprocess.run([sys.executable, "-c", AS_IN_A_NOTEBOOK, str(script)], cwd=out_dir, env=env).returncode != 0:
            raise RunError(f"{script} failed (see the traceback above)")
    else:
        os.environ.clear()
        os.environ.update(env)
        notebook = args.build / args.kernel / f"{args.kernel}.ipynb"
        execute_notebook(notebook, out_dir, args.timeout, Path(args.input_root))


def fallback_error(out_dir: Path) -> str | None:
    """The failure a run recorded in run_status.json when it kept its fallback submission, else None."""
    path = out_dir / STATUS
    status = json.loads(path.read_text()) if path.is_file() else {"fallback": False}
    return status["error"] if status["fallback"] else None


def summary(out_dir: Path, seconds: float) -> str:
    """What the run left: CV F1 per component and the output files."""
    lines = [f"finished in {seconds:.0f} s; outputs in {shown(out_dir)}/:"]
    lines += [f"  {path.name}" for path in sorted(out_dir.iterdir()) if path.is_file()]
    scores = out_dir / "cv_scores.json"
    if scores.is_file():
        report = json.loads(scores.read_text())
        if report.get("models"):
            lines.append(f"CV mean F1 on {report['rows']} train postings ({report['evaluated_on']}), each model alone:")
            lines += [f"  {name:>34}: {score:.4f}" for name, score in report["models"].items()]
        lines.append("each component of the plan at its best threshold, and the plan's union:")
        optimiser = report.get("optimiser_f1", {})
        lines += [
            f"  {name:>34}: {score:.4f}" + (f"  (optimiser: {optimiser[name]:.4f})" if name in optimiser else "")
            for name, score in report["f1"].items()
        ]
        lines.append("ablation (one change to the tuned union at its thresholds):")
        lines += [f"  {name:>34}: {score:.4f}" for name, score in report["ablation"].items()]
        union, corrected = report["thresholds"]["union"], report["gallery_corrected"]
        lines.append(f"union thresholds {union}; for a {corrected['rows']}-row test: {corrected['union']}")
    failure = fallback_error(out_dir)
    if failure:
        lines.append(f"FALLBACK submission: a stage failed ({failure})")
    timings = out_dir / "timings.json"
    if timings.is_file():
        report = json.loads(timings.read_text())
        hours = report["t4_seconds_at_hidden_rows"] / 3600
        lines.append(
            f"projected hidden rerun on a T4: {hours:.2f} h of the 2 h limit "
            "(timings.json, lib/inference/time_budget.py); " + report["basis"]
        )
    return "\n".join(lines)


def built_metadata(kernel: str, build_root: Path) -> dict:
    """The kernel-metadata.json of a built kernel; RunError naming the kernels that are built (and sources not yet)."""
    path = build_root / kernel / "kernel-metadata.json"
    if path.is_file():
        return json.loads(path.read_text())
    built = sorted(folder.parent.name for folder in build_root.glob("*/kernel-metadata.json"))
    sources = sorted(folder.parent.name for folder in (ROOT / "kernels").glob(f"*/{SETTINGS_FILE}"))
    if kernel in sources:
        raise RunError(f"{path}: not built; run `make build` (or build.py --out {build_root}) first")
    raise RunError(
        f"no kernel '{kernel}': built in {build_root}: {', '.join(built) or 'none'}; sources in kernels/: "
        f"{', '.join(sources)} (a training experiment runs as `make train EXP=<name>`)"
    )


def replace_outputs(staging: Path, out_dir: Path) -> None:
    """Make a finished run's folder the kernel's outputs, in place of the last ones."""
    if out_dir.exists():
        previous = out_dir.with_name(out_dir.name + ".previous")
        shutil.rmtree(previous, ignore_errors=True)
        out_dir.rename(previous)
        staging.rename(out_dir)
        shutil.rmtree(previous)
    else:
        staging.rename(out_dir)


def keep_failed(staging: Path, out_dir: Path) -> Path:
    """Keep a failed run's folder beside the last good outputs, as <name>.failed; say where each is."""
    failed = out_dir.with_name(out_dir.name + FAILED)
    shutil.rmtree(failed, ignore_errors=True)
    staging.rename(failed)
    kept = f"the last good outputs stay in {shown(out_dir)}/" if out_dir.is_dir() else "there were no earlier outputs"
    print(f"this run's outputs are in {shown(failed)}/; {kept}", file=sys.stderr)
    return failed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kernel")
    parser.add_argument("--comp", type=Path, default=ROOT / "data" / "sample", help="competition data folder")
    parser.add_argument("--source", action="store_true", help="run kernels/KERNEL/notebook.py, not the build")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds allowed per cell")
    parser.add_argument("--build", type=Path, default=ROOT / "build", help="folder of built kernels (build.py --out)")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs", help="folder of run outputs")
    parser.add_argument("--datasets", type=Path, default=DATASETS, help="folder of the local copies of datasets")
    parser.add_argument("--output", type=Path, help="folder for this run's outputs (default: RUNS/KERNEL)")
    mounts = "where sources are mounted: nested as on current Kaggle workers (datasets/<owner>/<slug>, ...) or flat"
    parser.add_argument("--layout", choices=LAYOUTS, default="nested", help=mounts)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--input-root", help=argparse.SUPPRESS)
    parser.add_argument(INSIDE_FLAG, action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    try:
        if args.inside_namespace:
            run_inside(args)
            return 0
        metadata = built_metadata(args.kernel, args.build)
        input_root = kaggle_input(metadata, args.comp, args.runs, args.layout, datasets=args.datasets)
        translate = path_translator(input_root)  # made while the input root is there
        out_dir = args.output or args.runs / (args.kernel + ("-source" if args.source else ""))
        staging = out_dir.with_name(out_dir.name + RUNNING)
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        prefix, network = network_isolation()
        kind = "source" if args.source else "built notebook"
        print(f"running {args.kernel} ({kind}) on {args.comp}; {args.layout} layout; {network}", flush=True)
        command = [sys.executable, "-m", "tools.local.run_kernel", args.kernel, INSIDE_FLAG, "--out", str(staging)]
        command += ["--input-root", str(input_root), "--timeout", str(args.timeout), "--build", str(args.build)]
        command += ["--source"] * args.source
        started = time.perf_counter()
        try:
            returncode = subprocess.run(prefix + command).returncode
        except KeyboardInterrupt:
            returncode = 130
        finally:
            shutil.rmtree(input_root)
        if returncode != 0 or fallback_error(staging):
            failed = keep_failed(staging, out_dir)
            if returncode == 0:
                print(translate(summary(failed, time.perf_counter() - started)))
                raise RunError(f"a stage failed and the kernel kept its fallback submission; see {failed / STATUS}")
            if not args.source:
                print(f"the whole traceback: {shown(failed / (args.kernel + '.ipynb'))}", file=sys.stderr)
            return 1
        replace_outputs(staging, out_dir)
        print(summary(out_dir, time.perf_counter() - started))
    except RunError as error:
        print(f"run failed: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
