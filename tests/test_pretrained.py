"""tools/pretrained.py fetching through the real timm and transformers clients from a local hub (tests/hub_server.py):
the weights dataset it writes loads with lib's own loaders, and its metadata is a valid Kaggle dataset's."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import timm

from lib.models.image import load_backbone_weights
from lib.models.sentence import embed_texts
from tests.hub_server import Hub, tiny_models

ROOT = Path(__file__).resolve().parent.parent


def fetch(model: str, hub: Hub, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path / "hf-home"), "NO_PROXY": "127.0.0.1"}
    command = [
        sys.executable,
        "-m",
        "tools.pretrained",
        model,
        "--datasets",
        tmp_path / "datasets",
        "--meta",
        tmp_path / "meta",
    ]
    return subprocess.run(list(map(str, command)), env=env, capture_output=True, text=True, cwd=ROOT, timeout=300)


def test_a_timm_backbone_and_a_transformers_model_become_weights_datasets(tmp_path, minilm):
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
    vectors = embed_texts(["teh botol 350 ml", "sabun mandi"], tmp_path / "datasets" / "tiny-bert-multilingual")
    assert vectors.shape == (2, 32) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    for slug in ["test-resnet-r160-in1k", "tiny-bert-multilingual"]:
        meta = json.loads((tmp_path / "meta" / slug / "dataset-metadata.json").read_text())
        assert meta["id"] == f"set-KAGGLE_USERNAME/{slug}" and 6 <= len(meta["title"]) <= 50
        assert len(meta["licenses"]) == 1 and "make upload-weights DATASET=" in (image.stdout + text.stdout)


def test_a_model_name_of_another_kind_is_refused_with_the_form_to_use(tmp_path):
    with Hub({}) as hub:
        result = fetch("efficientnet_b3", hub, tmp_path)
    assert result.returncode == 1 and "give timm:<name>.<tag>" in result.stderr
