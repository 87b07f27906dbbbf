import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

import build

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = """slug: tiny-kernel
title: Tiny kernel
owner: someone
competition_sources: [shopee-product-matching]
dataset_sources: [some-weights, other/their-model]
"""
LIB = {
    "lib/__init__.py": "",
    "lib/alpha.py": "from . import beta\n\nVALUE = beta.VALUE + 1\n",
    "lib/beta.py": "from lib.sub.delta import BASE\n\nVALUE = BASE * 10\n",
    "lib/gamma.py": "UNUSED = True\n",
    "lib/sub/__init__.py": "from .delta import BASE as BASE\n",
    "lib/sub/delta.py": "BASE = 4\n",
}
GOOD_SOURCE = """# %% [markdown]
# # A tiny kernel

# %%
from lib import alpha
from lib.paths_free import nothing  # noqa

# %%
print(alpha.VALUE)
"""


def make_repo(tmp_path: Path, source: str, extra_lib: dict | None = None) -> Path:
    """A repository with a small lib and one kernel whose notebook.py is `source`."""
    for relative, text in {**LIB, **(extra_lib or {})}.items():
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text(text)
    kernel = tmp_path / "kernels" / "tiny-kernel"
    kernel.mkdir(parents=True)
    (kernel / "kernel.yaml").write_text(SETTINGS)
    (kernel / "notebook.py").write_text(source)
    return kernel


def build_tiny(tmp_path: Path, source: str, extra_lib: dict | None = None) -> Path:
    kernel = make_repo(tmp_path, source, extra_lib)
    return build.build_kernel(kernel, tmp_path / "build", repo=tmp_path)


def written_modules(notebook) -> list[str]:
    return [c.source.split("\n")[0].split("/", 1)[1] for c in notebook.cells if c.source.startswith("%%writefile")]


def test_inlines_exactly_the_modules_used_transitively(tmp_path):
    source = GOOD_SOURCE.replace("from lib.paths_free import nothing  # noqa\n", "")
    out = build_tiny(tmp_path, source)
    notebook = nbformat.read(out / "tiny-kernel.ipynb", as_version=4)
    assert written_modules(notebook) == [
        "lib/__init__.py",
        "lib/alpha.py",
        "lib/beta.py",
        "lib/sub/__init__.py",
        "lib/sub/delta.py",
    ]
    assert "BUILD = {'commit':" in notebook.cells[0].source


def test_unresolvable_lib_import_names_file_and_line(tmp_path):
    with pytest.raises(build.BuildError, match=r"notebook.py line 6: cannot resolve 'import lib.paths_free'"):
        build_tiny(tmp_path, GOOD_SOURCE)


def test_real_kernel_builds_identically_twice(tmp_path):
    first = build.build_kernel(ROOT / "kernels" / "shopee-inference", tmp_path / "one")
    second = build.build_kernel(ROOT / "kernels" / "shopee-inference", tmp_path / "two")
    for name in ["shopee-inference.ipynb", "kernel-metadata.json"]:
        assert (first / name).read_bytes() == (second / name).read_bytes()
    notebook = nbformat.read(first / "shopee-inference.ipynb", as_version=4)
    nbformat.validate(notebook)
    assert notebook.nbformat == 4
    assert notebook.metadata.kernelspec.name == "python3"


def test_kernel_metadata_is_explicit_about_internet_and_sources(tmp_path, monkeypatch):
    monkeypatch.setenv("KAGGLE_USERNAME", "ignored-when-owner-set")
    out = build_tiny(tmp_path, GOOD_SOURCE.replace("from lib.paths_free import nothing  # noqa\n", ""))
    metadata = json.loads((out / "kernel-metadata.json").read_text())
    assert metadata == {
        "id": "someone/tiny-kernel",
        "title": "Tiny kernel",
        "code_file": "tiny-kernel.ipynb",
        "language": "python",
        "kernel_type": "notebook",
        "is_private": True,
        "enable_gpu": True,
        "enable_tpu": False,
        "enable_internet": False,
        "competition_sources": ["shopee-product-matching"],
        "dataset_sources": ["someone/some-weights", "other/their-model"],
        "kernel_sources": [],
    }


def test_owner_comes_from_kaggle_username_without_a_setting(tmp_path, monkeypatch):
    monkeypatch.setenv("KAGGLE_USERNAME", "envuser")
    out = build.build_kernel(ROOT / "kernels" / "shopee-inference", tmp_path)
    assert json.loads((out / "kernel-metadata.json").read_text())["id"] == "envuser/shopee-inference"


PLANTED = [
    ("!pip install timm", "pip install` without --no-index"),
    ("import subprocess\nsubprocess.run('pip install faiss-cpu', shell=True)", "pip install` without --no-index"),
    ("from transformers import AutoModel\nAutoModel.from_pretrained('bert-base-uncased')", "loads 'bert-base-uncased'"),
    ("import timm\ntimm.create_model('resnet18', pretrained=True)", "timm pretrained=True downloads"),
    ("from huggingface_hub import hf_hub_download", "downloads from a hub"),
    ("import pandas\npandas.read_csv('/kaggle/input/undeclared-data/x.csv')", "/kaggle/input/undeclared-data"),
    ("from lib import paths\npaths.input_dir('not-attached')", "input 'not-attached' is not a declared source"),
    ("import importlib\nimportlib.import_module('lib.gamma')", "dynamic import of lib.gamma"),
    ("import os\nos.environ['KAGGLE_KEY'] = '0123456789abcdef0123456789abcdef'", "looks like a credential"),
    ("CREDS = {'username': 'me', 'key': '0123456789abcdef0123456789abcdef'}", "looks like a credential"),
]


@pytest.mark.parametrize("planted, message", PLANTED)
def test_each_offline_violation_is_refused_with_cell_and_line(tmp_path, planted, message):
    source = "# %%\nfrom lib import alpha\n\n# %%\nx = 1\n" + planted + "\n"
    with pytest.raises(build.BuildError) as caught:
        build_tiny(tmp_path, source)
    text = str(caught.value)
    assert message in text
    planted_line = 6 + planted.count("\n")
    assert f"notebook.py line {planted_line}," in text
    assert "cell " in text and "cell line" in text
    assert not (tmp_path / "build" / "tiny-kernel").exists()


def test_violation_inside_a_lib_module_names_the_module(tmp_path):
    extra = {"lib/beta.py": "from lib.sub.delta import BASE\n\nVALUE = BASE * 10\nPATH = '/kaggle/input/nowhere'\n"}
    with pytest.raises(build.BuildError, match=r"\(lib/beta.py line 4, cell line 5\).*nowhere"):
        build_tiny(tmp_path, "# %%\nfrom lib import alpha\n", extra)


def test_live_key_from_the_environment_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("KAGGLE_KEY", "live-secret-value-123")
    with pytest.raises(build.BuildError, match="looks like a credential"):
        build_tiny(tmp_path, "# %%\nfrom lib import alpha\nnote = 'live-secret-value-123'\n")


def test_cli_fails_with_message_and_never_writes_into_sources(tmp_path):
    kernel = make_repo(tmp_path, "# %%\n!pip install faiss-cpu\n")
    before = {p: p.read_bytes() for p in kernel.iterdir()}
    result = subprocess.run(
        [sys.executable, str(ROOT / "build.py"), "--kernels", str(kernel.parent), "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert "build failed: tiny-kernel: 1 offline check(s) failed" in result.stderr
    assert {p: p.read_bytes() for p in kernel.iterdir()} == before
    (kernel / "notebook.py").write_text("# %%\nprint(1)\n")
    with pytest.raises(build.BuildError, match="refusing to write a build over sources"):
        build.build_kernel(kernel, kernel.parent, repo=tmp_path)
