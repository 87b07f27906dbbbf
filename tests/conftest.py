"""Shared fixtures: two tiny training runs on a generated sample, trained once per test session; the check that no
test writes into the repository's build/ or runs/ (tests build and run under pytest's temporary folders)."""

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from filelock import FileLock

ROOT = Path(__file__).resolve().parent.parent
GENERATED = ["build", "runs"]  # the repository's folders of builds and run outputs, the user's own
DATASETS = ROOT / "data" / "datasets"
MINILM = DATASETS / "all-minilm-l6-v2"
# what tools.local.local_datasets writes
LOCAL_COPIES = ["all-minilm-l6-v2/config.json", "shopee-wheels/requirements.txt"]
COMPETITION = "shopee-product-matching"
OWNER = "someone"  # the owner of the datasets and kernel outputs in the input root, as Kaggle mounts them
TINY_RUN = {
    "folds": {"count": 4, "fold": 0},
    "train": {"epochs": 2, "batch_size": 32, "workers": 0, "lr": {"image": 3e-3, "text": 1e-4}},
    "image": {"sizes": [32]},
    "valid": {"batch_size": 64},
    "model": {
        "image": {"backbone": "test_resnet", "weights": "random", "embedding": 32, "dropout": 0.0},
        "text": {"max_length": 12, "embedding": 64},
        "fusion": {"linear_out": 64},
    },
}
# Two experiments that differ (image size, margins, text embedding) on the same seed and fold: the same OOF rows.
EXPERIMENTS = {
    "shopee-train-a": TINY_RUN,
    "shopee-train-b": {
        **TINY_RUN,
        "image": {"sizes": [48]},
        "model": {
            **TINY_RUN["model"],
            "text": {"max_length": 16, "embedding": 32},
            "heads": {"concat": {"margin": 0.2, "margin_end": 0.2}},
        },
    },
}


def edit_settings(notebook: Path, changes: dict[str, str]) -> None:
    """Replace setting lines of a copied kernel's notebook.py (each must be there, so a moved setting fails loudly)."""
    source = notebook.read_text()
    for setting, value in changes.items():
        assert setting in source, f"{setting} is no longer in {notebook.name}; update this test"
        source = source.replace(setting, value)
    notebook.write_text(source)


def files_under(folder: Path) -> dict[str, tuple[int, int]]:
    """Size and modification time of every file (or link) under folder, by path."""
    found = {}
    for path in sorted(folder.rglob("*")) if folder.is_dir() else []:
        if path.is_file() or path.is_symlink():
            stat = path.lstat()
            found[str(path.relative_to(ROOT))] = (stat.st_size, stat.st_mtime_ns)
    return found


@pytest.fixture(scope="session", autouse=True)
def repository_outputs_untouched():
    """Fail the session when a test added, changed or removed a file in the repository's build/ or runs/."""
    before = {name: files_under(ROOT / name) for name in GENERATED}
    yield
    for name in GENERATED:
        after = files_under(ROOT / name)
        changed = sorted(path for path in set(before[name]) | set(after) if before[name].get(path) != after.get(path))
        assert not changed, f"tests wrote into the repository's {name}/ (build and run under tmp_path): {changed[:10]}"


def pytest_configure(config):
    """Under pytest-xdist, each worker (gw0, gw1, ...) keeps to one CPU of its own, and so do the kernels and tools it
    starts: their torch, OpenMP and LightGBM thread pools then never fight over the same cores."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker:
        cpus = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpus[int(worker.removeprefix("gw")) % len(cpus)]})


# The end-to-end tier: files whose tests run kernels, the kaggle CLI, make targets, a browser or a model hub; the rest
# are unit tests of one module each (`make test-unit`, the edit loop's tier; `make test` runs both).
END_TO_END = {
    "test_delivery.py",
    "test_gpu_check.py",
    "test_inference_kernel.py",
    "test_kernel_console.py",
    "test_lab.py",
    "test_loader_kernel.py",
    "test_local_datasets.py",
    "test_optimize_kernel.py",
    "test_pretrained.py",
    "test_real_data.py",
    "test_run_kernel.py",
    "test_title_report.py",
    "test_train_kernel.py",
    "test_walkthrough.py",
}


def pytest_collection_modifyitems(config, items):
    """Mark the tests of END_TO_END's files `e2e` (`pytest -m "not e2e"`: the unit tier)."""
    for item in items:
        if item.path.name in END_TO_END:
            item.add_marker(pytest.mark.e2e)


def shared_folder(tmp_path_factory) -> Path:
    """A folder every pytest-xdist worker of this session sees (the session's base temporary folder when alone)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session")
def local_datasets(tmp_path_factory) -> Path:
    """data/datasets with the local copies `make datasets` writes (the offline MiniLM, the wheels stand-in), written
    first, by one worker at a time, when a fresh clone lacks them."""
    with FileLock(shared_folder(tmp_path_factory) / "local-datasets.lock"):
        if not all((DATASETS / path).is_file() for path in LOCAL_COPIES):
            subprocess.run(
                [sys.executable, "-m", "tools.local.local_datasets"], check=True, cwd=ROOT, capture_output=True
            )
    return DATASETS


@pytest.fixture(scope="session")
def minilm(local_datasets) -> Path:
    """The offline MiniLM folder (data/datasets/all-minilm-l6-v2), once local_datasets has made it."""
    return MINILM


@dataclass
class TrainedRuns:
    """Training outputs of the two tiny experiments.

    Attributes:
        input_root: a /kaggle/input stand-in in Kaggle's current layout: the sample as
            competitions/shopee-product-matching, the offline MiniLM as datasets/<OWNER>/all-minilm-l6-v2, and a link
            per run (a kernel source) as notebooks/<OWNER>/<name>.
        competition: the sample competition folder (input_root/competitions/shopee-product-matching).
        runs: run name (the slug of its kernel source) -> its output folder (model.pt, oof_embeddings.npz, ...).
    """

    input_root: Path
    competition: Path
    runs: dict[str, Path]


@pytest.fixture(scope="session")
def trained_runs(tmp_path_factory, minilm) -> TrainedRuns:
    """Two tiny joint experiments trained with lib.training.train.run on a 300-row sample (fold 0 of 4, seed 42), once
    for all pytest-xdist workers."""
    base = shared_folder(tmp_path_factory) / "trained-runs"
    with FileLock(f"{base}.lock"):
        if not (base / "done").is_file():
            shutil.rmtree(base, ignore_errors=True)
            train_runs(base, minilm)
            (base / "done").touch()
    root = base / "input"
    return TrainedRuns(root, root / "competitions" / COMPETITION, {name: base / "runs" / name for name in EXPERIMENTS})


def train_runs(base: Path, minilm: Path) -> None:
    """Train EXPERIMENTS into base/runs/ on a sample in base/input/, laid out as TrainedRuns says."""
    from lib.training import experiment, train

    root = base / "input"
    competition = root / "competitions" / COMPETITION
    datasets, notebooks = root / "datasets" / OWNER, root / "notebooks" / OWNER
    sample = [sys.executable, "-m", "tools.data.make_sample", "--out", str(competition), "--rows", "300", "--seed", "3"]
    subprocess.run(sample, check=True, cwd=ROOT, capture_output=True)
    datasets.mkdir(parents=True)
    notebooks.mkdir(parents=True)
    (datasets / "all-minilm-l6-v2").symlink_to(minilm, target_is_directory=True)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KERNEL_INPUT_DIR", str(root))
        for name, overrides in EXPERIMENTS.items():
            train.run(experiment.resolve(overrides, f"tests/conftest.py ({name})"), name, base / "runs" / name)
            (notebooks / name).symlink_to(base / "runs" / name, target_is_directory=True)
