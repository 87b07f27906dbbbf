"""lib.data.oof: reading the OOF embeddings of training runs and refusing runs that embed different postings."""

import json

import numpy as np
import pandas as pd
import pytest

from lib.data import oof


def write_run(folder, ids, labels, fold=0, outputs=("concat", "text")):
    """A training run's output folder with OOF embeddings (float16), metrics.json and a model.pt stand-in."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(len(ids))
    arrays = {output: rng.normal(size=(len(ids), 4)).astype(np.float16) for output in outputs}
    np.savez(folder / oof.OOF, posting_id=np.array(ids), label_group=np.array(labels), **arrays)
    config = {"seed": 42, "folds": {"count": 5, "fold": fold}}
    (folder / oof.METRICS).write_text(json.dumps({"config": config, "best": {"epoch": 1, "cv": 0.5}}))
    (folder / oof.MODEL).write_bytes(b"weights")
    return folder


def test_a_run_reads_as_float32_outputs_with_its_postings(tmp_path):
    folder = write_run(tmp_path / "shopee-train-a", ["p1", "p2", "p3"], [7, 7, 9])
    run = oof.read_run("shopee-train-a", folder)
    assert list(run.posting_ids) == ["p1", "p2", "p3"] and list(run.labels) == [7, 7, 9]
    assert set(run.outputs) == {"concat", "text"} and run.outputs["text"].dtype == np.float32
    assert run.split == "seed 42, fold 0 of 5"
    train = pd.DataFrame({"posting_id": ["p3", "p0", "p1", "p2"], "title": ["c", "z", "a", "b"]})
    assert list(oof.oof_postings(run, train, "train.csv").title) == ["a", "b", "c"]
    with pytest.raises(
        ValueError, match=r"row 1 is posting p2, which train.csv lacks \(1 of its 3 postings are not there\)"
    ):
        oof.oof_postings(run, train.iloc[:3], "train.csv")


def test_an_unfinished_run_is_refused_naming_the_missing_file(tmp_path):
    folder = write_run(tmp_path / "shopee-train-a", ["p1"], [1])
    (folder / oof.OOF).unlink()
    with pytest.raises(FileNotFoundError, match="oof_embeddings.npz: missing; shopee-train-a is not a finished"):
        oof.read_run("shopee-train-a", folder)


def test_runs_with_other_folds_are_refused_naming_both_and_the_first_difference(tmp_path):
    first = oof.read_run("shopee-train-a", write_run(tmp_path / "a", ["p1", "p2", "p3"], [1, 1, 2]))
    same = oof.read_run("shopee-train-b", write_run(tmp_path / "b", ["p1", "p2", "p3"], [1, 1, 2]))
    oof.check_aligned([first, same])
    other = oof.read_run("shopee-train-c", write_run(tmp_path / "c", ["p1", "p4", "p3"], [1, 3, 2], fold=1))
    message = (
        r"shopee-train-a and shopee-train-c hold different OOF postings: row 1 is p2 \(group 1\) vs p4 \(group 3\) "
        r"\(shopee-train-a: seed 42, fold 0 of 5; shopee-train-c: seed 42, fold 1 of 5\); train every run with "
        "the same seed and fold"
    )
    with pytest.raises(ValueError, match=message):
        oof.check_aligned([first, same, other])
    shorter = oof.read_run("shopee-train-d", write_run(tmp_path / "d", ["p1", "p2"], [1, 1]))
    with pytest.raises(ValueError, match="shopee-train-a and shopee-train-d hold different OOF postings: 3 vs 2 rows"):
        oof.check_aligned([first, shorter])


@pytest.mark.parametrize("layout", ["nested", "flat"])
def test_attached_runs_are_the_sources_holding_oof_embeddings(tmp_path, monkeypatch, layout):
    kernels, competition = ("notebooks/someone/", "competitions/") if layout == "nested" else ("", "")
    write_run(tmp_path / f"{kernels}shopee-train-b", ["p1"], [1])
    write_run(tmp_path / f"{kernels}shopee-train-a", ["p1"], [1])
    (tmp_path / f"{kernels}optimize-ensemble").mkdir()
    (tmp_path / f"{competition}shopee-product-matching").mkdir(parents=True)
    monkeypatch.setenv("KERNEL_INPUT_DIR", str(tmp_path))
    assert oof.attached_runs() == ["shopee-train-a", "shopee-train-b"]
