"""tools.data.pretrained fetching through the real timm and transformers clients from a local hub (tests/hub_server.py):
the weights dataset it writes loads with lib's own loaders, its metadata is a valid Kaggle dataset's, and the plan's
model entry it prints for each family (timm backbone, sentence models of the e5, LaBSE and other families, CLIP,
SigLIP) is a valid plan model that lib's inference pipeline embeds postings with."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import timm

from lib.inference import pipeline
from lib.inference.plan import OUTPUTS, validate_tuned_config
from lib.inference.stopwatch import Stopwatch
from lib.models.image import load_backbone_weights
from lib.models.sentence import embed_texts
from tests.hub_server import Hub, tiny_models
from tests.tiny_encoders import hub_repos, postings

ROOT = Path(__file__).resolve().parent.parent


def fetch(model: str, hub: Hub, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path / "hf-home"), "NO_PROXY": "127.0.0.1"}
    command = [
        sys.executable,
        "-m",
        "tools.data.pretrained",
        model,
        "--datasets",
        tmp_path / "datasets",
        "--meta",
        tmp_path / "meta",
    ]
    return subprocess.run(list(map(str, command)), env=env, capture_output=True, text=True, cwd=ROOT, timeout=300)


def test_a_timm_backbone_and_a_transformers_model_become_weights_datasets(tmp_path, minilm, monkeypatch):
    with Hub(tiny_models(tmp_path, minilm)) as hub:
        image = fetch("timm:test_resnet.r160_in1k", hub, tmp_path)
        text = fetch("hf:someone/tiny-bert-multilingual", hub, tmp_path)
    assert image.returncode == 0 and text.returncode == 0, image.stderr[-2000:] + text.stderr[-2000:]
    assert ("GET", "/timm/test_resnet.r160_in1k/resolve/main/model.safetensors") in hub.requests

    weights = tmp_path / "datasets" / "test-resnet-r160-in1k" / "test_resnet.safetensors"
    backbone = timm.create_model("test_resnet", num_classes=0)
    load_backbone_weights(backbone, str(weights))  # the training kernel's own loader
    assert "model.image.weights: test-resnet-r160-in1k/test_resnet.safetensors" in image.stdout
    assert "model.text.model_dir: tiny-bert-multilingual" in text.stdout and "  - tiny-bert-multilingual" in text.stdout
    assert "sentence model of family other: mean pooling" in text.stdout
    vectors = embed_texts(["teh botol 350 ml", "sabun mandi"], tmp_path / "datasets" / "tiny-bert-multilingual")
    assert vectors.shape == (2, 32) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    for slug in ["test-resnet-r160-in1k", "tiny-bert-multilingual"]:
        meta = json.loads((tmp_path / "meta" / slug / "dataset-metadata.json").read_text())
        assert meta["id"] == f"set-KAGGLE_USERNAME/{slug}" and 6 <= len(meta["title"]) <= 50
        assert len(meta["licenses"]) == 1 and "make upload-weights DATASET=" in (image.stdout + text.stdout)

    name, entry = plan_entry(image.stdout)  # the backbone as a frozen plan model
    assert name == "test-resnet-r160-in1k" and entry == {
        "kind": "image",
        "source": "test-resnet-r160-in1k",
        "file": "test_resnet.safetensors",
        "backbone": "test_resnet.r160_in1k",
        "image_size": 160,
    }
    assert "in kernels/shopee-inference/kernel.yaml, under dataset_sources:\n  - test-resnet-r160-in1k" in image.stdout
    outputs = embedded(name, entry, tmp_path / "datasets", tmp_path, monkeypatch)
    assert outputs["image"].shape == (5, backbone.num_features)


def test_a_model_name_of_another_kind_is_refused_with_the_form_to_use(tmp_path):
    with Hub({}) as hub:
        result = fetch("efficientnet_b3", hub, tmp_path)
    assert result.returncode == 1 and "give timm:<name>.<tag>" in result.stderr


def plan_entry(stdout: str) -> tuple[str, dict]:
    """The plan's model entry printed by tools/data/pretrained.py: its name and its value."""
    lines = stdout.splitlines()
    entry = lines[lines.index('in a plan (inference_config.json), under "models":') + 1]
    ((name, value),) = json.loads("{" + entry + "}").items()
    return name, value


def embedded(name: str, entry: dict, datasets: Path, tmp_path: Path, monkeypatch) -> dict:
    """The entry in a plan validated by lib, and its outputs by lib's inference pipeline on a few postings."""
    member = {"model": name, "output": OUTPUTS[entry["kind"]][0], "weight": 1.0}
    rules = {"components": {"c": {"threshold": 0.5}}, "groups": [], "unit_filter": False, "mutual": False}
    plan = {
        "models": {name: entry},
        "components": {"c": {"members": [member], "blend": None}},
        "matching": rules,
        "cv": {"rows": 5, "f1": {}},
    }
    validate_tuned_config(plan, "the printed entry")
    monkeypatch.setenv("KERNEL_INPUT_DIR", str(datasets))
    frame, settings = postings(tmp_path / "images"), {"batch_size": 4, "workers": 0, "max_length": 16}
    return pipeline.model_outputs(plan, frame, tmp_path / "images", settings, Stopwatch())[name]


@pytest.mark.parametrize(
    "model, says, entry",
    [
        (
            "hf:intfloat/tiny-multilingual-e5-small",
            'sentence model of family e5: "query: " before every title, mean pooling',
            {"kind": "sentence", "source": "tiny-multilingual-e5-small", "pooling": "mean", "prefix": "query: "},
        ),
        (
            "hf:someone/tiny-LaBSE",
            "sentence model of family LaBSE: the pooler's output",
            {"kind": "sentence", "source": "tiny-labse", "pooling": "pooler", "prefix": ""},
        ),
        (
            "hf:someone/tiny-clip",
            "clip image-text model: outputs image and text (titles padded to a batch's longest)",
            {"kind": "clip", "source": "tiny-clip"},
        ),
        (
            "hf:someone/tiny-siglip",
            "siglip image-text model: outputs image and text (titles padded to 64 tokens)",
            {"kind": "clip", "source": "tiny-siglip"},
        ),
        (
            "hf:someone/tiny-siglip-multilingual",
            "siglip image-text model: outputs image and text (titles padded to 64 tokens)",
            {"kind": "clip", "source": "tiny-siglip-multilingual"},
        ),
    ],
    ids=["e5", "labse", "clip", "siglip", "siglip-sentencepiece"],
)
def test_each_transformers_family_is_a_plan_model(tmp_path, monkeypatch, model, says, entry):
    with Hub(hub_repos(tmp_path)) as hub:
        result = fetch(model, hub, tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert says in result.stdout and plan_entry(result.stdout) == (entry["source"], entry)
    assert ("in the experiment" in result.stdout) == (entry["kind"] == "sentence")  # a training text branch
    outputs = embedded(entry["source"], entry, tmp_path / "datasets", tmp_path, monkeypatch)
    assert sorted(outputs) == sorted(OUTPUTS[entry["kind"]])
    for vectors in outputs.values():
        assert vectors.shape[0] == 5 and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    meta = json.loads((tmp_path / "meta" / entry["source"] / "dataset-metadata.json").read_text())
    assert meta["id"] == f"set-KAGGLE_USERNAME/{entry['source']}"
