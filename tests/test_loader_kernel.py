"""Loader workers in a built notebook (lib.data.dataset.data_loader): started again and again from a real Jupyter
kernel, whose threads a forked worker would copy, they never hang."""

import json
import subprocess
import sys
from pathlib import Path

import build

ROOT = Path(__file__).resolve().parent.parent
KERNEL = "loader-workers"
STARTS = 5
NOTEBOOK = f"""# %% [markdown]
# # Loader workers, started {STARTS} times

# %%
import os

from lib.data import competition, paths
from lib.data.augment import eval_transform
from lib.data.dataset import Collate, Postings, data_loader
from lib.data.postings import read_postings

folder = paths.input_dir(competition.COMPETITION)
train = read_postings(folder / "train.csv", labelled=True).head(64)
postings = Postings(train, folder / "train_images", eval_transform(32, (0.5,) * 3, (0.5,) * 3))
seen = []
for start in range({STARTS}):
    for batch in data_loader(postings, 2, batch_size=16, collate_fn=Collate()):
        seen.append(tuple(batch["image"].shape))
print(len(seen), "batches", sorted(set(seen)), "kernel pid", os.getpid())
"""
SETTINGS = """slug: loader-workers
title: Loader workers
is_private: true
enable_gpu: false
competition_sources:
  - shopee-product-matching
"""


def test_loader_workers_started_repeatedly_from_a_built_notebook_never_hang(tmp_path):
    kernel = tmp_path / "kernels" / KERNEL
    kernel.mkdir(parents=True)
    (kernel / "notebook.py").write_text(NOTEBOOK)
    (kernel / "kernel.yaml").write_text(SETTINGS)
    build.build_kernel(kernel, tmp_path / "build")
    sample = tmp_path / "sample"  # its own: a fresh clone has no data/sample
    make_sample = [sys.executable, "-m", "tools.data.make_sample", "--out", sample, "--rows", "100", "--seed", "5"]
    subprocess.run(list(map(str, make_sample)), check=True, capture_output=True, cwd=ROOT)
    runs = tmp_path / "runs"
    command = [sys.executable, "-m", "tools.local.run_kernel", KERNEL, "--build", tmp_path / "build", "--runs", runs]
    command += ["--comp", sample]
    command += ["--timeout", "300"]  # a hung worker raises after lib.data.dataset.LOADER_TIMEOUT_S; a hang stops here
    result = subprocess.run(list(map(str, command)), capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    notebook = json.loads((runs / KERNEL / f"{KERNEL}.ipynb").read_text())
    printed = "".join("".join(o.get("text", "")) for cell in notebook["cells"] for o in cell.get("outputs", []))
    assert f"{STARTS * 4} batches [(16, 3, 32, 32)]" in printed
