"""The local runner: sources mapped by slug, a kernel process without network (end-to-end runs: test_*_kernel.py)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from lib.data import paths
from tools.local.run_kernel import RunError, built_metadata, input_tree, mount_points, network_isolation, source_folders

ROOT = Path(__file__).resolve().parent.parent

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


def test_an_unknown_kernel_is_refused_listing_the_kernels_built_and_their_sources(tmp_path):
    (tmp_path / "shopee-train-demo").mkdir()
    (tmp_path / "shopee-train-demo" / "kernel-metadata.json").write_text("{}")
    with pytest.raises(RunError) as error:
        built_metadata("does-not-exist", tmp_path)
    sources = ", ".join(sorted(path.parent.name for path in (ROOT / "kernels").glob("*/kernel.yaml")))
    assert str(error.value) == (
        f"no kernel 'does-not-exist': built in {tmp_path}: shopee-train-demo; sources in kernels/: {sources} "
        "(a training experiment runs as `make train EXP=<name>`)"
    )
    with pytest.raises(RunError, match=r"shopee-inference/kernel-metadata.json: not built; run `make build`"):
        built_metadata("shopee-inference", tmp_path)


TINY_METADATA = {"competition_sources": [], "dataset_sources": [], "kernel_sources": []}


def tiny_kernel(build_root, cells: list[str]) -> None:
    """A built kernel named tiny (no sources) of these code cells."""
    notebook = nbformat.v4.new_notebook()
    notebook.metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    notebook.cells = [nbformat.v4.new_code_cell(cell) for cell in cells]
    (build_root / "tiny").mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, build_root / "tiny" / "tiny.ipynb")
    (build_root / "tiny" / "kernel-metadata.json").write_text(json.dumps(TINY_METADATA))


def run_tiny(build_root, runs):
    return subprocess.run(
        [sys.executable, "-m", "tools.local.run_kernel", "tiny", "--build", build_root, "--runs", runs],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )


def test_a_run_becomes_the_kernels_outputs_only_when_it_finished_and_a_failed_one_is_kept_beside_them(tmp_path):
    build_root, runs = tmp_path / "build", tmp_path / "runs"
    tiny_kernel(build_root, ["open('result.txt', 'w').write('first')"])
    assert run_tiny(build_root, runs).returncode == 0
    assert (runs / "tiny" / "result.txt").read_text() == "first" and sorted(p.name for p in runs.iterdir()) == ["tiny"]

    tiny_kernel(build_root, ["open('result.txt', 'w').write('second')", "open('partial.txt', 'w').write('x')\n1 / 0"])
    failed = run_tiny(build_root, runs)
    assert failed.returncode == 1
    assert sorted(p.name for p in (runs / "tiny").iterdir()) == ["result.txt", "tiny.ipynb"]
    assert (runs / "tiny" / "result.txt").read_text() == "first", "the last good outputs stay"
    assert (runs / "tiny.failed" / "partial.txt").is_file() and (runs / "tiny.failed" / "tiny.ipynb").is_file()
    assert sorted(p.name for p in runs.iterdir()) == ["tiny", "tiny.failed"]
    assert (
        "run failed: cell 2 failed:\n    open('partial.txt', 'w').write('x')\n    1 / 0\nZeroDivisionError"
        in failed.stderr
    )
    assert (
        f"this run's outputs are in {runs / 'tiny.failed'}/; the last good outputs stay in {runs / 'tiny'}/"
        in failed.stderr
    )
    assert f"the whole traceback: {runs / 'tiny.failed' / 'tiny.ipynb'}" in failed.stderr

    tiny_kernel(build_root, ["open('result.txt', 'w').write('third')"])
    assert run_tiny(build_root, runs).returncode == 0
    assert (runs / "tiny" / "result.txt").read_text() == "third" and (runs / "tiny.failed").is_dir()


def test_a_kaggle_model_is_mounted_from_its_local_copy_or_named_with_the_command_that_makes_it(tmp_path):
    from tools.local import run_kernel

    handle = "google/siglip/transformers/base-multilingual/1"
    metadata = {"competition_sources": [], "dataset_sources": [], "kernel_sources": [], "model_sources": [handle]}
    with pytest.raises(
        RunError, match=rf"missing local copy of source 'base-multilingual'; run `make model-source MODEL={handle}`"
    ):
        source_folders(metadata, tmp_path, tmp_path)
    assert source_folders(metadata, tmp_path, tmp_path, missing_ok=True) == {}
    assert run_kernel.MODELS == ROOT / "data" / "models"
    assert mount_points(metadata, "nested") == {"base-multilingual": f"models/{handle}"}
