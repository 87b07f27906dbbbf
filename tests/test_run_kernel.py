"""The local runner: sources mapped by slug, a kernel process without network (end-to-end runs: test_*_kernel.py)."""

import os
import shutil
import subprocess
import sys

import pytest

from lib.data import paths
from tools.run_kernel import RunError, input_tree, mount_points, network_isolation, source_folders

METADATA = {
    "competition_sources": ["shopee-product-matching"],
    "dataset_sources": ["alice/all-minilm-l6-v2"],
    "kernel_sources": ["bob/optimize-ensemble"],
}


def test_every_declared_source_maps_to_its_local_folder(tmp_path):
    comp, runs = tmp_path / "comp", tmp_path / "runs"
    (runs / "optimize-ensemble").mkdir(parents=True)
    comp.mkdir()
    metadata = {"competition_sources": ["shopee-product-matching"], "dataset_sources": [], "kernel_sources": []}
    metadata["kernel_sources"] = ["someone/optimize-ensemble"]
    with pytest.raises(RunError, match="comp: no train.csv; a competition folder is laid out like data/sample"):
        source_folders(metadata, comp, runs)
    (comp / "train.csv").write_text("posting_id,image,image_phash,title,label_group\n")
    assert source_folders(metadata, comp, runs) == {
        "shopee-product-matching": comp,
        "optimize-ensemble": runs / "optimize-ensemble",
    }
    metadata["kernel_sources"].append("someone/shopee-train-demo")
    with pytest.raises(RunError, match="source .shopee-train-demo.; run the kernel whose output it is"):
        source_folders(metadata, comp, runs)
    assert source_folders(metadata, comp, runs, missing_ok=True) == {  # what `make lab` lays out
        "shopee-product-matching": comp,
        "optimize-ensemble": runs / "optimize-ensemble",
    }


def test_kernel_process_sees_only_loopback():
    prefix, sentence = network_isolation()
    if not prefix:
        pytest.skip(sentence)
    probe = "import socket; print(sorted(name for _, name in socket.if_nameindex()))"
    result = subprocess.run(prefix + [sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.stdout.strip() == "['lo']"


def links(root) -> dict[str, str]:
    """Every link under root (relative path -> its target), links not followed."""
    found = {}
    for folder, names, _ in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            if os.path.islink(path):
                found[os.path.relpath(path, root)] = os.readlink(path)
    return found


@pytest.mark.parametrize(
    "layout, expected",
    [
        (
            "nested",
            {
                "shopee-product-matching": "competitions/shopee-product-matching",
                "all-minilm-l6-v2": "datasets/alice/all-minilm-l6-v2",
                "optimize-ensemble": "notebooks/bob/optimize-ensemble",
            },
        ),
        ("flat", {slug: slug for slug in ["shopee-product-matching", "all-minilm-l6-v2", "optimize-ensemble"]}),
    ],
)
def test_sources_are_laid_out_as_kaggle_mounts_them_and_lib_paths_finds_them(tmp_path, monkeypatch, layout, expected):
    folders = {slug: tmp_path / "local" / slug for slug in expected}
    for folder in folders.values():
        folder.mkdir(parents=True)
    root = input_tree(folders, mount_points(METADATA, layout))
    try:
        assert links(root) == {place: str(folders[slug].resolve()) for slug, place in expected.items()}
        monkeypatch.setenv("KERNEL_INPUT_DIR", str(root))
        assert {slug: paths.input_dir(slug) for slug in expected} == {s: root / p for s, p in expected.items()}
    finally:
        shutil.rmtree(root)
