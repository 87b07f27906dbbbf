"""Datasets and models kernels attach: a dataset uploaded (created or versioned) from a local folder, the wheels
dataset downloaded for Kaggle's image, a Kaggle model downloaded where local runs mount it."""

import json
import os
import re
import tempfile
from pathlib import Path

import build
from tools.env import wheels as wheels_list
from tools.kaggle.cli import DeliveryError, kaggle
from tools.kaggle.paths import LOCAL_DATASETS, TRAIN
from tools.kaggle.preflight import DATASETS_META, ROOT

METADATA_FILE = "dataset-metadata.json"
WHEELS_META = DATASETS_META / "wheels"


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
    if not re.fullmatch(build.MODEL_HANDLE, handle or ""):
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
