import ast
import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import nbformat
import pytest

import build
from tests.wheel_files import write_wheel

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = """slug: tiny-kernel
title: Tiny kernel
owner: someone
competition_sources: [shopee-product-matching]
dataset_sources: [some-weights, other/their-model]
kernel_sources: [bob/their-run]
"""
LIB = {
    "lib/__init__.py": "",
    "lib/alpha.py": "from . import beta\n\nVALUE = beta.VALUE + 1\n",
    "lib/beta.py": "from lib.sub.delta import BASE\n\nVALUE = BASE * 10\n",
    "lib/gamma.py": "UNUSED = True\n",
    "lib/sub/__init__.py": "from .delta import BASE as BASE\n",
    "lib/sub/delta.py": "BASE = 4\n",
}
PATHS = {  # the real lib.data.paths and what it needs
    name: (ROOT / name).read_text() for name in ["lib/data/__init__.py", "lib/data/competition.py", "lib/data/paths.py"]
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


def hidden(cell) -> bool:
    """Whether JupyterLab (jupyter.source_hidden) and Kaggle's viewer (_kg_hide-input) show the cell's code folded."""
    return cell.metadata.get("jupyter", {}).get("source_hidden") is True and cell.metadata.get("_kg_hide-input") is True


def library_headings(notebook) -> list[int]:
    """The positions of the markdown cells that head the inlined library."""
    return [
        number
        for number, cell in enumerate(notebook.cells)
        if cell.cell_type == "markdown" and cell.source.startswith(build.LIBRARY_HEADING)
    ]


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
    # the title, then the library (heading, stamp, package folders, modules) right before the first code cell
    assert notebook.cells[0].source == "# A tiny kernel" and library_headings(notebook) == [1]
    assert "BUILD = {'commit':" in notebook.cells[2].source
    assert [cell.source for cell in notebook.cells[-2:]] == ["from lib import alpha", "print(alpha.VALUE)"]
    assert all(hidden(cell) for cell in notebook.cells[2:-2]) and not any(map(hidden, notebook.cells[-2:]))


def test_the_kernels_own_leading_cells_come_first_and_the_library_before_its_first_lib_import(tmp_path):
    source = "# %% [markdown]\n# # Tiny\n\n# %%\nCONFIG = {'k': 1}\n\n# %%\nfrom lib import alpha\n\nprint(CONFIG)\n"
    notebook = nbformat.read(build_tiny(tmp_path, source) / "tiny-kernel.ipynb", as_version=4)
    assert [cell.source for cell in notebook.cells[:2]] == ["# Tiny", "CONFIG = {'k': 1}"]
    assert library_headings(notebook) == [2] and notebook.cells[-1].source.startswith("from lib import alpha")
    without_lib = build_tiny(tmp_path / "plain", "# %% [markdown]\n# # Plain\n\n# %%\nprint(1)\n")
    notebook = nbformat.read(without_lib / "tiny-kernel.ipynb", as_version=4)
    assert notebook.cells[0].source == "# Plain" and library_headings(notebook) == [1]
    assert notebook.cells[-1].source == "print(1)" and written_modules(notebook) == []


@pytest.mark.parametrize("kernel", ["shopee-inference", "shopee-train", "optimize-ensemble"])
def test_a_real_kernel_reads_title_and_config_first_then_one_hidden_library(tmp_path, kernel):
    notebook = nbformat.read(build.build_kernel(ROOT / "kernels" / kernel, tmp_path) / f"{kernel}.ipynb", 4)
    [heading] = library_headings(notebook)
    leading = notebook.cells[:heading]
    assert leading[0].cell_type == "markdown" and leading[0].source.startswith("# Shopee - Price Match Guarantee: ")
    parameters = [cell for cell in leading if cell.metadata.get("tags") == ["parameters"]]
    if kernel == "shopee-inference":
        assert not parameters
    else:  # the values a variant sets (tools/local/variants.py), right after the title
        assert parameters == [leading[1]] and leading[1].cell_type == "code"
    configured = leading[len(parameters) + 1 :]
    if kernel == "shopee-train":  # its first code cell imports lib (its config is the experiment's, read there)
        assert configured == []
    else:
        assert len(configured) == 1 and configured[0].cell_type == "code" and configured[0].source.startswith("CONFIG")
    wheels = "shopee-wheels" in (ROOT / "kernels" / kernel / "kernel.yaml").read_text()
    end = heading + 1 + 2 + len(written_modules(notebook)) + wheels  # stamp, package folders, modules, install
    library, own = notebook.cells[heading + 1 : end], notebook.cells[:heading] + notebook.cells[end:]
    assert library[0].source.startswith("# Built by build.py") and all(map(hidden, library))
    assert sum(cell.source.startswith("%%writefile") for cell in library) == len(written_modules(notebook)) > 5
    assert not any(map(hidden, own)) and "lib" in own[heading].source and own[heading].cell_type == "code"


def naive_lib_imports(path: Path) -> set[str]:
    """The lib modules one file imports, read from its import statements (relative ones from its package)."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == "lib"}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + [base] if base else parent)
            if base.split(".")[0] == "lib":
                found.add(base)
                found |= {f"{base}.{alias.name}" for alias in node.names if naive_file(f"{base}.{alias.name}")}
    return found


def naive_file(module: str) -> Path | None:
    """lib/a/b.py or lib/a/b/__init__.py of module lib.a.b, if there is one."""
    path = ROOT / module.replace(".", "/")
    return next((p for p in [path.with_suffix(".py"), path / "__init__.py"] if p.is_file()), None)


@pytest.mark.parametrize("kernel", ["shopee-inference", "shopee-train", "optimize-ensemble"])
def test_a_kernel_inlines_exactly_the_lib_modules_it_imports(tmp_path, kernel):
    pending = list(naive_lib_imports(ROOT / "kernels" / kernel / "notebook.py"))
    if "shopee-wheels" in (ROOT / "kernels" / kernel / "kernel.yaml").read_text():
        pending.append("lib.data.paths")  # build.py's wheels install cell imports it
    wanted = set()
    while pending:
        parts = pending.pop().split(".")
        for package in [".".join(parts[:end]) for end in range(1, len(parts) + 1)]:
            if package not in wanted:
                wanted.add(package)
                pending += naive_lib_imports(naive_file(package))
    notebook = nbformat.read(build.build_kernel(ROOT / "kernels" / kernel, tmp_path) / f"{kernel}.ipynb", 4)
    assert sorted(written_modules(notebook)) == sorted(str(naive_file(m).relative_to(ROOT)) for m in wanted)


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
        "kernel_sources": ["bob/their-run"],
        "model_sources": [],
        "machine_shape": "NvidiaTeslaT4",
    }


def test_a_gpu_kernel_asks_for_t4s_unless_its_settings_name_another_shape(tmp_path):
    kernel = make_repo(tmp_path, "# %%\nprint(1)\n")
    shapes = {}
    for name, extra in [("default", ""), ("p100", "machine_shape: NvidiaTeslaP100\n"), ("cpu", "enable_gpu: false\n")]:
        (kernel / "kernel.yaml").write_text(SETTINGS + extra)
        out = build.build_kernel(kernel, tmp_path / name, repo=tmp_path)
        shapes[name] = json.loads((out / "kernel-metadata.json").read_text()).get("machine_shape")
    assert shapes == {"default": "NvidiaTeslaT4", "p100": "NvidiaTeslaP100", "cpu": None}
    (kernel / "kernel.yaml").write_text(SETTINGS + "enable_gpu: false\nmachine_shape: NvidiaTeslaT4\n")
    with pytest.raises(build.BuildError, match="kernel.yaml: machine_shape is the GPU's; remove it, or set enable_gpu"):
        build.build_kernel(kernel, tmp_path / "refused", repo=tmp_path)


@pytest.mark.parametrize(
    "line, message",
    [
        ('enable_gpu: "yes"', "enable_gpu: 'yes' is not true or false; e.g. `enable_gpu: true`"),
        ("is_private: 1", "is_private: 1 is not true or false; e.g. `is_private: true`"),
        (
            "machine_shape: [NvidiaTeslaT4]",
            "machine_shape: ['NvidiaTeslaT4'] is not a string; e.g. `machine_shape: NvidiaTeslaT4`",
        ),
        (
            "kernel_sources: bob/their-run",
            "kernel_sources: 'bob/their-run' is not a list of strings; e.g. `kernel_sources: [optimize-ensemble]`",
        ),
        ("dataset_sources: [some-weights, 3]", "dataset_sources.1: 3 is not a string"),
        ("title: 12345", "title: 12345 is not a string of at least 5 characters; e.g. `title: Shopee inference`"),
    ],
)
def test_a_setting_of_the_wrong_type_is_refused_naming_the_file_key_value_and_type(tmp_path, line, message):
    kernel = make_repo(tmp_path, "# %%\nprint(1)\n")
    key = line.split(":")[0]
    settings = [setting for setting in SETTINGS.splitlines() if not setting.startswith(f"{key}:")]
    (kernel / "kernel.yaml").write_text("\n".join(settings + [line]) + "\n")
    with pytest.raises(build.BuildError) as error:
        build.build_kernel(kernel, tmp_path / "build", repo=tmp_path)
    assert str(error.value).startswith(f"{kernel / 'kernel.yaml'}: {message}")
    assert not (tmp_path / "build").exists()


def test_a_kaggle_model_is_attached_by_its_handle_and_read_by_its_instance(tmp_path):
    source = """# %%\nfrom lib import alpha\n\n# %%\nprint(alpha.VALUE, input_dir("base-multilingual"))\n"""
    source += "# /kaggle/input/models/google/siglip/transformers/base-multilingual/1/config.json\n"
    kernel = make_repo(tmp_path, source)
    handle = "google/siglip/transformers/base-multilingual/1"
    (kernel / "kernel.yaml").write_text(SETTINGS + f"model_sources: [{handle}]\n")
    out = build.build_kernel(kernel, tmp_path / "build", repo=tmp_path)
    metadata = json.loads((out / "kernel-metadata.json").read_text())
    assert metadata["model_sources"] == [handle]
    assert build.mount_places(metadata)["base-multilingual"] == f"models/{handle}"
    (kernel / "kernel.yaml").write_text(SETTINGS + "model_sources: [google/siglip/transformers/base-multilingual]\n")
    with pytest.raises(
        build.BuildError,
        match="model_sources.0: 'google/siglip/transformers/base-multilingual' is not a Kaggle model's handle",
    ):
        build.build_kernel(kernel, tmp_path / "refused", repo=tmp_path)


PLANTED = [
    ("!pip install timm", "pip install` without --no-index"),
    ("import subprocess\nsubprocess.run('pip install faiss-cpu', shell=True)", "pip install` without --no-index"),
    ("from transformers import AutoModel\nAutoModel.from_pretrained('bert-base-uncased')", "loads 'bert-base-uncased'"),
    ("import timm\ntimm.create_model('resnet18', pretrained=True)", "timm pretrained=True downloads"),
    ("from huggingface_hub import hf_hub_download", "downloads from a hub"),
    ("import pandas\npandas.read_csv('/kaggle/input/undeclared-data/x.csv')", "/kaggle/input/undeclared-data,"),
    ("data = '/kaggle/input/competitions/some-weights'", "/kaggle/input/competitions/some-weights,"),
    ("data = '/kaggle/input/datasets/someone/their-model/x'", "/kaggle/input/datasets/someone/their-model,"),
    ("data = '/kaggle/input/notebooks/other/their-model'", "/kaggle/input/notebooks/other/their-model,"),
    ("data = '/kaggle/input/datasets/bob/their-run'", "/kaggle/input/datasets/bob/their-run,"),
    ("data = '/kaggle/input/datasets/someone/'", "/kaggle/input/datasets,"),
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


def test_every_place_kaggle_may_mount_a_declared_source_is_accepted(tmp_path):
    reads = [
        "/kaggle/input/competitions/shopee-product-matching/train.csv",
        "/kaggle/input/shopee-product-matching/train.csv",
        "/kaggle/input/datasets/someone/some-weights/model.pt",
        "/kaggle/input/datasets/other/their-model",
        "/kaggle/input/their-model/config.json",
        "/kaggle/input/notebooks/bob/their-run/model.pt",
        "/kaggle/input/their-run",
    ]
    source = "# %%\nfrom lib.data import paths\n\nREADS = " + repr(reads) + "\nrun = paths.input_dir('their-run')\n"
    assert (build_tiny(tmp_path, source, PATHS) / "tiny-kernel.ipynb").is_file()


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


def test_a_local_build_without_a_kaggle_owner_says_nothing_of_it(tmp_path):
    # the owner matters only to a push, which refuses without one (tools/kaggle/delivery.py, tools/kaggle/preflight.py)
    kernel = make_repo(tmp_path, "# %%\nprint(1)\n")
    (kernel / "kernel.yaml").write_text(SETTINGS.replace("owner: someone\n", ""))
    (tmp_path / "kaggle-config").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAGGLE_")}
    env.update(KAGGLE_CONFIG_DIR=str(tmp_path / "kaggle-config"), HOME=str(tmp_path))
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, str(ROOT / "build.py"), "--kernels", str(kernel.parent), "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"built {out / kernel.name / (kernel.name + '.ipynb')}\n"
    metadata = json.loads((out / kernel.name / "kernel-metadata.json").read_text())
    assert metadata["id"] == f"{build.OWNER_PLACEHOLDER}/tiny-kernel"


def build_with_sources(tmp_path: Path, dataset_sources: list[str]) -> nbformat.NotebookNode:
    """The built notebook of the tiny kernel attaching `dataset_sources` (its lib given the real lib/data/paths.py)."""
    kernel = make_repo(tmp_path, GOOD_SOURCE.replace("from lib.paths_free import nothing  # noqa\n", ""), PATHS)
    (kernel / "kernel.yaml").write_text(SETTINGS.replace("[some-weights, other/their-model]", str(dataset_sources)))
    out = build.build_kernel(kernel, tmp_path / "build", repo=tmp_path)
    return nbformat.read(out / "tiny-kernel.ipynb", as_version=4)


def test_the_wheels_install_cell_follows_the_lib_cells_with_lib_paths_iff_the_wheels_dataset_is_attached(tmp_path):
    plain = build_with_sources(tmp_path / "plain", ["some-weights"])
    attached = build_with_sources(tmp_path / "own", ["some-weights", "shopee-wheels"])
    theirs = build_with_sources(tmp_path / "theirs", ["someone/shopee-wheels"])
    install = build.wheels_install()
    assert install == build.WHEELS_CELL.read_text().rstrip("\n") and f'input_dir("{build.WHEELS_SLUG}")' in install
    assert [cell.source for cell in plain.cells].count(install) == 0
    assert "lib/data/paths.py" not in written_modules(plain)
    for notebook in (attached, theirs):
        sources = [cell.source for cell in notebook.cells]
        assert sources.count(install) == 1
        assert written_modules(notebook) == sorted(written_modules(plain) + sorted(PATHS))
        position = sources.index(install)
        assert sources[position - 1].startswith("%%writefile") and not sources[position + 1].startswith("%%writefile")
        assert sources[position + 1 :] == [cell.source for cell in plain.cells][position - len(PATHS) :]
    metadata = json.loads((ROOT / "datasets-meta" / "wheels" / "dataset-metadata.json").read_text())
    assert metadata["id"].split("/")[1] == build.WHEELS_SLUG


def run_install_cell(python: Path, input_root: Path) -> subprocess.CompletedProcess:
    """The wheels install cell run by `python`, with `input_root` as the kernel's inputs and lib importable, offline."""
    env = {**os.environ, "KERNEL_INPUT_DIR": str(input_root), "PIP_CONFIG_FILE": os.devnull, "PYTHONPATH": str(ROOT)}
    return subprocess.run([str(python), "-c", build.wheels_install()], capture_output=True, text=True, env=env)


def test_the_wheels_install_cell_installs_offline_in_either_layout_or_says_the_image_serves(tmp_path):
    venv.create(tmp_path / "venv", with_pip=True)
    python = tmp_path / "venv" / "bin" / "python"
    check = [str(python), "-c", "import tinywheel; print(tinywheel.VALUE)"]  # a module of write_wheel
    inputs = tmp_path / "input"
    (inputs / "competitions" / "shopee-product-matching").mkdir(parents=True)
    skipped = run_install_cell(python, inputs)
    assert skipped.returncode == 0, skipped.stderr
    assert skipped.stdout == f"no shopee-wheels/requirements.txt under {inputs}: the packages of the image are used\n"
    assert subprocess.run(check, capture_output=True).returncode != 0
    wheels = inputs / "datasets" / "someone" / "shopee-wheels"
    wheels.mkdir(parents=True)
    write_wheel(wheels, "tinywheel", "1.0", "py3-none-any")
    (wheels / "requirements.txt").write_text("tinywheel==1.0\n")
    installed = run_install_cell(python, inputs)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    command = f"{python} -m pip install --no-index --find-links {wheels} -r {wheels}/requirements.txt"
    assert installed.stdout.startswith(f"installing offline: {command}\n")
    assert "Successfully installed tinywheel-1.0" in installed.stdout
    assert subprocess.run(check, capture_output=True, text=True).stdout == "1\n"
    flat = wheels.rename(inputs / "shopee-wheels")
    (flat / "requirements.txt").write_text("tinywheel==1.0\nabsent-package==2.0\n")
    refused = run_install_cell(python, inputs)
    assert f"installing offline: {python} -m pip install --no-index --find-links {flat} -r" in refused.stdout
    assert refused.returncode == 1 and "No matching distribution found for absent-package==2.0" in refused.stdout
    assert "add what it lacks to tools/env/wheels.txt, then `make wheels`" in refused.stderr
