"""The local runner: sources mapped by slug, a kernel process without network (end-to-end runs: test_*_kernel.py)."""

import subprocess
import sys

import pytest

from tools.run_kernel import RunError, network_isolation, source_folders


def test_every_declared_source_maps_to_its_local_folder(tmp_path):
    comp, runs = tmp_path / "comp", tmp_path / "runs"
    (runs / "optimize-ensemble").mkdir(parents=True)
    comp.mkdir()
    metadata = {"competition_sources": ["shopee-product-matching"], "dataset_sources": [], "kernel_sources": []}
    metadata["kernel_sources"] = ["someone/optimize-ensemble"]
    assert source_folders(metadata, comp, runs) == {
        "shopee-product-matching": comp,
        "optimize-ensemble": runs / "optimize-ensemble",
    }
    metadata["kernel_sources"].append("someone/shopee-train-demo")
    with pytest.raises(RunError, match="source .shopee-train-demo.; run the kernel whose output it is"):
        source_folders(metadata, comp, runs)


def test_kernel_process_sees_only_loopback():
    prefix, sentence = network_isolation()
    if not prefix:
        pytest.skip(sentence)
    probe = "import socket; print(sorted(name for _, name in socket.if_nameindex()))"
    result = subprocess.run(prefix + [sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.stdout.strip() == "['lo']"
