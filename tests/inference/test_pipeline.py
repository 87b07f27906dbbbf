import json
import re

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from lib.data import oof
from lib.data.text import normalise_title
from lib.inference import pipeline, time_budget
from lib.inference.stopwatch import Stopwatch
from lib.models.sentence import embed_texts
from tests.tiny_encoders import backbone_weights, image_text_folder, postings, tiny_bert


def test_batch_size_is_halved_after_each_out_of_memory_error():
    tried = []

    def embed(batch_size):
        tried.append(batch_size)
        if batch_size > 16:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return batch_size

    assert pipeline.fitting_batches(embed, 128) == 16
    assert tried == [128, 64, 32, 16]


def test_out_of_memory_at_one_posting_per_batch_is_raised():
    def embed(batch_size):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    with pytest.raises(torch.cuda.OutOfMemoryError):
        pipeline.fitting_batches(embed, 4)


def plan_of(members: dict[str, list[tuple[str, str, float]]], tfidf: bool = True) -> dict:
    components = {
        name: {"members": [{"model": m, "output": o, "weight": w} for m, o, w in rows], "blend": None}
        for name, rows in members.items()
    }
    if tfidf:
        components["tfidf"] = {"tfidf": {"analyzer": "word"}}
    models = {
        m: {"kind": "checkpoint", "source": m, "file": "model.pt"} for rows in members.values() for m, _, _ in rows
    }
    return {"models": models, "components": components}


def test_components_combine_their_members_and_tfidf_reads_titles():
    rng = np.random.default_rng(0)
    outputs = {m: {"concat": rng.normal(size=(6, 4)).astype(np.float32)} for m in ["a", "b"]}
    plan = plan_of({"both": [("a", "concat", 3.0), ("b", "concat", 1.0)]})
    titles = ["teh botol 350 ml", "teh botol 350 ml", "kopi susu", "sabun mandi", "sabun cair", "kopi hitam"]
    vectors = pipeline.component_vectors(plan, outputs, titles, titles, Stopwatch())
    a, b = (outputs[m]["concat"] / np.linalg.norm(outputs[m]["concat"], axis=1, keepdims=True) for m in "ab")
    expected = 0.75 * a @ a.T + 0.25 * b @ b.T  # the weighted mean of the members' cosine similarities
    np.testing.assert_allclose(vectors["both"] @ vectors["both"].T, expected, atol=1e-5)
    assert sp.issparse(vectors["tfidf"]) and vectors["tfidf"].shape[0] == 6
    assert pipeline.used_models(plan) == ["a", "b"]

    stopwatch = Stopwatch()
    found = pipeline.neighbour_search(vectors, k=3, stopwatch=stopwatch)
    sim, idx = found["tfidf"]
    assert idx[0, 0] in (0, 1) and set(idx[0, :2]) == {0, 1} and sim[0, 1] == pytest.approx(1.0)
    assert [s.name for s in stopwatch.stages] == ["test: both: neighbours", "test: tfidf: neighbours"]


@pytest.mark.parametrize("analyzer", ["word", "char_wb", "code"])
def test_every_tfidf_analyzer_makes_a_component(analyzer):
    plan = {"models": {}, "components": {"tfidf": {"tfidf": {"analyzer": analyzer}}}}
    titles = ["teh botol 350 ml", "teh botol 350 ml", "kopi susu"]
    vectors = pipeline.component_vectors(plan, {}, titles, titles, Stopwatch())
    sim, idx = pipeline.neighbour_search(vectors, k=3, stopwatch=Stopwatch())["tfidf"]
    assert set(idx[0, :2]) == {0, 1} and sim[0, 1] == pytest.approx(1.0)
    assert (idx[2] == -1).all() == (analyzer == "code"), "a title without codes has no code neighbour"


def test_checkpoints_must_share_their_out_of_fold_postings(tmp_path, monkeypatch):
    monkeypatch.setenv("KERNEL_INPUT_DIR", str(tmp_path))
    runs = [("a", ["p3", "p1", "p2"]), ("b", ["p3", "p1", "p2"]), ("c", ["p1", "p2", "p9"]), ("e", ["p1", "p2", "p3"])]
    for name, ids in runs:
        (tmp_path / name).mkdir()
        np.savez(tmp_path / name / oof.OOF, posting_id=np.array(ids), label_group=np.arange(3), concat=np.eye(3))
        (tmp_path / name / oof.MODEL).write_bytes(b"weights")
        split = {"seed": 42, "folds": {"count": 5, "fold": 0}}
        (tmp_path / name / oof.METRICS).write_text(json.dumps({"config": split}))
    train = pd.DataFrame({"posting_id": ["p0", "p3", "p2", "p1"], "title": ["w", "x", "y", "z"]})
    rows = pipeline.evaluation_rows(plan_of({"x": [("a", "concat", 1.0), ("b", "image", 1.0)]}), train)
    assert list(rows.posting_id) == ["p3", "p1", "p2"] and list(rows.title) == ["x", "z", "y"]
    with pytest.raises(ValueError, match="a and e hold different OOF postings: row 0 is p3"):
        pipeline.evaluation_rows(plan_of({"x": [("a", "concat", 1.0), ("e", "concat", 1.0)]}), train)
    with pytest.raises(ValueError, match="row 2 is posting p9, which train.csv lacks"):
        pipeline.evaluation_rows(plan_of({"x": [("c", "concat", 1.0)]}), train)
    (tmp_path / "d").mkdir()  # an all-data model: no out-of-fold rows, so no honest CV on train
    refused = f"{tmp_path / 'd' / oof.OOF}: missing, so model 'd' of the plan (d) has no out-of-fold rows, and CV on "
    with pytest.raises(FileNotFoundError, match=re.escape(refused + "train would score rows it trained on")):
        pipeline.evaluation_rows(plan_of({"x": [("a", "concat", 1.0), ("d", "concat", 1.0)]}), train)
    assert pipeline.evaluation_rows(plan_of({}, tfidf=True), train) is train


def test_candidate_pairs_carry_unit_conflicts():
    postings = pd.DataFrame({"image_phash": ["x", "y", "z"]})
    titles = ["susu 500 ml", "susu 250 ml", "susu 500 ml"]
    neighbours = {"t": (np.ones((3, 3), np.float32), np.array([[0, 1, 2], [1, 0, 2], [2, 0, 1]]))}
    c, conflicts = pipeline.candidate_pairs(postings, titles, neighbours, Stopwatch())
    pairs = {(int(r), int(col)): bool(f) for r, col, f in zip(c.rows, c.cols, conflicts)}
    assert pairs[(0, 1)] and pairs[(1, 2)] and not pairs[(0, 2)]


def test_pretrained_encoders_project_by_their_cited_rates_where_there_are_some():
    effnet = {"kind": "image", "source": "s", "file": "f", "backbone": "efficientnet_b3.ra2_in1k", "image_size": 320}
    assert pipeline.forward_parts(effnet) == ["efficientnet_b3@320"] and time_budget.cited_rate("efficientnet_b3@320")
    assert pipeline.forward_parts({"kind": "clip", "source": "clip-vit-base-patch32"}) == ["clip-vit-base-patch32"]
    assert time_budget.cited_rate("clip-vit-base-patch32") is None  # the TFLOPS ratio, flagged


def test_a_plan_of_pretrained_encoders_gives_every_kinds_outputs(tmp_path, monkeypatch):
    root = tmp_path / "input"  # each source at its slug, as Kaggle's older layout mounts them
    tiny_bert(root / "tiny-e5")
    (root / "test-resnet").mkdir(parents=True)
    backbone_weights(root / "test-resnet" / "test_resnet.safetensors")
    image_text_folder(root / "tiny-clip", "clip")
    image_text_folder(root / "tiny-siglip", "siglip")
    monkeypatch.setenv("KERNEL_INPUT_DIR", str(root))
    models = {
        "e5": {"kind": "sentence", "source": "tiny-e5", "pooling": "mean", "prefix": "query: "},
        "resnet": {
            "kind": "image",
            "source": "test-resnet",
            "file": "test_resnet.safetensors",
            "backbone": "test_resnet.r160_in1k",
            "image_size": 40,
        },
        "clip": {"kind": "clip", "source": "tiny-clip"},
        "siglip": {"kind": "clip", "source": "tiny-siglip"},
    }
    members = [("e5", "text"), ("resnet", "image"), ("clip", "image"), ("siglip", "text")]
    plan = plan_of({"all": [(model, output, 1.0) for model, output in members]}, tfidf=False) | {"models": models}
    frame, stopwatch = postings(tmp_path / "images"), Stopwatch()
    settings = {"batch_size": 2, "workers": 0, "max_length": 16}
    outputs = pipeline.model_outputs(plan, frame, tmp_path / "images", settings, stopwatch)

    assert {name: sorted(out) for name, out in outputs.items()} == {
        "clip": ["image", "text"],
        "e5": ["text"],
        "resnet": ["image"],
        "siglip": ["image", "text"],
    }
    titles = [normalise_title(title) for title in frame.title]
    e5 = embed_texts(titles, root / "tiny-e5", prefix="query: ", max_length=16)
    np.testing.assert_allclose(outputs["e5"]["text"], e5, atol=1e-6)  # the plan's prefix reached the model
    for out in outputs.values():
        for vectors in out.values():
            assert vectors.shape[0] == len(frame) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    forward = {s.name: s.parts for s in stopwatch.stages if s.kind == "forward"}
    assert forward == {
        "test: clip: embeddings": ["tiny-clip"],
        "test: e5: embeddings": ["tiny-e5"],
        "test: resnet: embeddings": ["test_resnet@40"],
        "test: siglip: embeddings": ["tiny-siglip"],
    }
    reads = sorted(s.name for s in stopwatch.stages if s.kind == "decode")
    assert reads == ["test: clip: read images", "test: resnet: read images", "test: siglip: read images"]
    pairs = pipeline.image_text_pairs(plan["models"], outputs)
    assert list(pairs) == ["clip", "siglip"] and pairs["clip"][1] is outputs["clip"]["text"]
