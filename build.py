"""Build kernels/<name>/ into build/<name>/<name>.ipynb + kernel-metadata.json, with the lib modules it uses inlined.

Usage: python build.py [NAME ...]   (every kernel when no name is given)

One file, a section per job in the order a build takes them: kernel.yaml to kernel-metadata.json, the import
closure, composing the cells, the offline checks, writing. It stays one file (not a package) because `build/` is the
builds' folder and `import build` is what the tools and tests use; the wheels cell is a Python file of its own
(kernels/wheels_install.py).
"""

import argparse
import ast
import copy
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import jupytext
import nbformat
import yaml

from lib import schema

ROOT = Path(__file__).resolve().parent
SETTINGS_FILE = "kernel.yaml"
SOURCE_FILE = "notebook.py"
MODEL_HANDLE = r"[^/\s]+/[^/\s]+/[^/\s]+/[^/\s]+/\d+"  # a Kaggle model: owner/model/framework/instance/N
SETTINGS_SCHEMA = {  # kernel.yaml (lib.schema); every key but slug and title may be left out
    "type": "mapping",
    "keys": {
        "owner": {"type": "str", "optional": True, "fix": "e.g. `owner: your Kaggle username`"},
        "slug": {"type": "str", "min_length": 5, "fix": "e.g. `slug: shopee-inference`; Kaggle refuses shorter ones"},
        "title": {"type": "str", "min_length": 5, "fix": "e.g. `title: Shopee inference`; Kaggle refuses shorter ones"},
        "is_private": {"type": "bool", "optional": True, "fix": "e.g. `is_private: true`"},
        "enable_gpu": {"type": "bool", "optional": True, "fix": "e.g. `enable_gpu: true`"},
        "competition_sources": {
            "type": "list",
            "items": {"type": "str"},
            "optional": True,
            "fix": "e.g. `competition_sources: [shopee-product-matching]`",
        },
        "dataset_sources": {
            "type": "list",
            "items": {"type": "str"},
            "optional": True,
            "fix": "e.g. `dataset_sources: [all-minilm-l6-v2]`",
        },
        "kernel_sources": {
            "type": "list",
            "items": {"type": "str"},
            "optional": True,
            "fix": "e.g. `kernel_sources: [optimize-ensemble]`",
        },
        "model_sources": {
            "type": "list",
            "items": {
                "type": "str",
                "pattern": MODEL_HANDLE,
                "expected": "a Kaggle model's handle owner/model/framework/instance/version",
                "fix": "e.g. `google/siglip/transformers/base-patch16-256-multilingual/1`",
            },
            "optional": True,
            "fix": "e.g. `model_sources: [google/siglip/transformers/base-patch16-256-multilingual/1]`",
        },
        "machine_shape": {"type": "str", "optional": True, "fix": "e.g. `machine_shape: NvidiaTeslaT4`"},
    },
}
GPU_SHAPE = "NvidiaTeslaT4"  # 2 x T4, written out: the CLI's docs still name the P100, which torch 2.10 cannot use
OWNER_PLACEHOLDER = "set-KAGGLE_USERNAME"
WHEELS_SLUG = "shopee-wheels"  # the wheels dataset of datasets-meta/wheels (`make wheels`)
WHEELS_CELL = ROOT / "kernels" / "wheels_install.py"  # the cell installing it, added to every kernel attaching it
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}
# the folder under /kaggle/input of each kind of source in Kaggle's current layout (its owner/slug below it)
MOUNT_FOLDERS = {
    "competition_sources": "competitions",
    "dataset_sources": "datasets",
    "kernel_sources": "notebooks",
    "model_sources": "models",
}
LIBRARY_HEADING = "## The inlined library (lib/, written by build.py)"
# a cell whose code is folded on opening: in JupyterLab (nbformat's jupyter.source_hidden) and Kaggle's viewer
HIDDEN_SOURCE = {"jupyter": {"source_hidden": True}, "_kg_hide-input": True}


class BuildError(Exception):
    """A kernel that cannot be built; the message names the file, cell and line and says what to do."""


@dataclass
class Cell:
    """One cell of the built notebook and where its text comes from."""

    kind: str
    source: str
    origin: str
    first_line: int = 1
    hidden: bool = False
    tags: tuple[str, ...] = ()  # the source cell's tags (a kernel's `parameters` cell: tools/local/variants.py)


# === kernel.yaml: the settings, the owner, kernel-metadata.json and where Kaggle mounts each source


def read_settings(kernel_dir: Path) -> dict:
    """The kernel's settings file, checked against SETTINGS_SCHEMA."""
    path = kernel_dir / SETTINGS_FILE
    if not path.is_file():
        raise BuildError(f"{path}: missing; every kernel folder needs {SETTINGS_FILE} (slug, title, sources)")
    try:
        settings = schema.check(yaml.safe_load(path.read_text()) or {}, SETTINGS_SCHEMA, str(path))
    except ValueError as error:
        raise BuildError(str(error)) from error
    if "machine_shape" in settings and not settings.get("enable_gpu", True):
        raise BuildError(f"{path}: machine_shape is the GPU's; remove it, or set enable_gpu: true")
    return settings


def kaggle_config_dir() -> Path:
    """The folder where the kaggle CLI looks for kaggle.json (its own rule: KAGGLE_CONFIG_DIR, ~/.kaggle, XDG)."""
    if os.environ.get("KAGGLE_CONFIG_DIR"):
        return Path(os.environ["KAGGLE_CONFIG_DIR"])
    legacy = Path.home() / ".kaggle"
    if legacy.exists():
        return legacy
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "kaggle"


def kaggle_json() -> dict:
    """The kaggle.json the kaggle CLI would read, or {} when there is none."""
    path = kaggle_config_dir() / "kaggle.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def kaggle_owner(settings: dict) -> str:
    """The kernel owner: the setting, else KAGGLE_USERNAME, else the username in kaggle.json, else a placeholder."""
    return (
        settings.get("owner") or os.environ.get("KAGGLE_USERNAME") or kaggle_json().get("username", OWNER_PLACEHOLDER)
    )


def with_owner(source: str, owner: str) -> str:
    """`owner/slug` for a source given as a bare slug."""
    return source if "/" in source else f"{owner}/{source}"


def kernel_metadata(name: str, settings: dict, owner: str) -> dict:
    """kernel-metadata.json for `kaggle kernels push`, internet off and a GPU kernel's machine shape written."""
    metadata = {
        "id": f"{owner}/{settings['slug']}",
        "title": settings["title"],
        "code_file": f"{name}.ipynb",
        "language": "python",
        "kernel_type": "notebook",
        "is_private": settings.get("is_private", True),
        "enable_gpu": settings.get("enable_gpu", True),
        "enable_tpu": False,
        "enable_internet": False,
        "competition_sources": list(settings.get("competition_sources", [])),
        "dataset_sources": [with_owner(s, owner) for s in settings.get("dataset_sources", [])],
        "kernel_sources": [with_owner(s, owner) for s in settings.get("kernel_sources", [])],
        "model_sources": list(settings.get("model_sources", [])),
    }
    if metadata["enable_gpu"]:
        metadata["machine_shape"] = settings.get("machine_shape", GPU_SHAPE)
    return metadata


def kernel_dir_metadata(kernel_dir: Path) -> dict:
    """The kernel-metadata.json of a kernel folder, from its settings file and the Kaggle owner."""
    settings = read_settings(kernel_dir)
    return kernel_metadata(kernel_dir.name, settings, kaggle_owner(settings))


def source_slug(key: str, source: str) -> str:
    """The name lib.data.paths.input_dir finds a declared source by: its slug, or a Kaggle model's instance."""
    return source.split("/")[3] if key == "model_sources" else source.split("/")[-1]


def declared_slugs(metadata: dict) -> set[str]:
    """The slugs of the declared sources (what lib.data.paths.input_dir finds them by)."""
    return set(mount_places(metadata))


def mount_places(metadata: dict) -> dict[str, str]:
    """Where Kaggle's current layout mounts each declared source under /kaggle/input, by slug: competitions/<slug>,
    datasets/<owner>/<slug>, notebooks/<owner>/<slug> or models/<owner>/<model>/<framework>/<instance>/<version>."""
    return {
        source_slug(key, source): f"{folder}/{source}"
        for key, folder in MOUNT_FOLDERS.items()
        for source in metadata.get(key, [])
    }


def declared_paths(metadata: dict) -> set[str]:
    """The paths under /kaggle/input where Kaggle may mount the declared sources: their mount_places, and the flat
    <slug> of each."""
    return set(mount_places(metadata).values()) | declared_slugs(metadata)


# === The import closure: the lib modules a kernel's cells import, directly or through each other


def python_text(source: str) -> str:
    """Cell text with IPython magics and shell lines blanked, so that it parses and keeps its line numbers."""
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.split("\n"))


def imported_lib_modules(tree: ast.AST, package: str | None, repo: Path) -> list[tuple[str, int]]:
    """(lib module, line) for each import of a lib module in a parsed source; `package` holds it if in lib."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names if alias.name.split(".")[0] == "lib"]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".") if package else []
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            if base.split(".")[0] != "lib":
                continue
            found.append((base, node.lineno))
            for alias in node.names:
                if module_file(f"{base}.{alias.name}", repo):
                    found.append((f"{base}.{alias.name}", node.lineno))
    return found


def module_file(module: str, repo: Path) -> Path | None:
    """The file of a lib module, or None when there is none."""
    base = repo / module.replace(".", "/")
    for path in [base.with_suffix(".py"), base / "__init__.py"]:
        if path.is_file():
            return path
    return None


def lib_closure(roots: list[tuple[str, int]], origin: str, repo: Path) -> list[str]:
    """Every lib module the roots need, transitively, with the packages that hold them; sorted."""
    needed: set[str] = set()
    pending = [(module, origin, line) for module, line in roots]
    while pending:
        module, where, line = pending.pop()
        parts = module.split(".")
        for depth in range(1, len(parts) + 1):
            name = ".".join(parts[:depth])
            if name in needed:
                continue
            path = module_file(name, repo)
            if path is None:
                raise BuildError(
                    f"{where} line {line}: cannot resolve 'import {module}': no {name.replace('.', '/')}.py"
                )
            needed.add(name)
            tree = ast.parse(path.read_text(), str(path))
            relative = str(path.relative_to(repo))
            pending += [(m, relative, n) for m, n in imported_lib_modules(tree, package_of(path, repo), repo)]
    return sorted(needed)


def package_of(path: Path, repo: Path) -> str:
    """Dotted name of the package a lib file belongs to (a package's __init__.py belongs to the package itself)."""
    return module_name(path, repo) if path.name == "__init__.py" else module_name(path, repo).rpartition(".")[0]


def module_name(path: Path, repo: Path) -> str:
    """Dotted name of a lib file (a package's __init__.py names the package)."""
    parts = list(path.relative_to(repo).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


# === Composing the built notebook: the kernel's own cells, the library's (stamp, modules, wheels install) between them


def git_stamp(repo: Path) -> str:
    """The source of the stamp cell: the commit built and whether the tree had uncommitted changes."""

    def git(*args: str) -> str:
        result = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
        return result.stdout.strip() if result.returncode == 0 else ""

    build = {
        "commit": git("rev-parse", "HEAD") or "unknown (not a git checkout)",
        "dirty": bool(git("status", "--porcelain")),
    }
    return f"# Built by build.py from kernels/ and lib/: edit those, then rebuild.\nBUILD = {build!r}\nprint(BUILD)"


def wheels_install() -> str:
    """The source of the cell that installs the attached wheels dataset offline, or says the image's packages serve:
    WHEELS_CELL, a Python file of its own (linted and tested as code).

    It comes after the lib cells, which only write the modules, and finds the dataset with lib.data.paths in whichever
    layout Kaggle mounted it; the kernel's own cells import the modules, and the packages, after it. Where every
    requirement is installed at its version already (a local run), pip is not started. pip's failure stops the
    kernel, naming the fix.
    """
    return WHEELS_CELL.read_text().rstrip("\n")


def lib_cells(modules: list[str], repo: Path) -> list[Cell]:
    """One cell making the package folders and one `%%writefile` cell per module."""
    packages = [m for m in modules if module_file(m, repo).name == "__init__.py"]
    makedirs = "\n".join(f'os.makedirs(f"{{LIB_DIR}}/{p.replace(".", "/")}")' for p in packages)
    setup = (
        "# The lib modules this kernel uses, inlined by build.py: written to a package folder on sys.path.\n"
        f'import os, sys, tempfile\n\nLIB_DIR = tempfile.mkdtemp(prefix="kernel-lib-")\n{makedirs}\n'
        "sys.path.insert(0, LIB_DIR)"
    )
    cells = [Cell("code", setup, "build.py", hidden=True)]
    for module in modules:
        path = module_file(module, repo)
        relative = path.relative_to(repo).as_posix()
        source = path.read_text().rstrip("\n")
        cells.append(Cell("code", f"%%writefile {{LIB_DIR}}/{relative}\n{source}", relative, first_line=0, hidden=True))
    return cells


def library_heading(modules: list[str], wheels: bool) -> str:
    """The markdown cell heading the inlined library: what its hidden cells do."""
    install = ", then installs the attached wheels dataset offline" if wheels else ""
    return (
        f"{LIBRARY_HEADING}\n"
        f"The build stamp, then the {len(modules)} `lib` modules this kernel imports (directly or through each other), "
        f"each written by a `%%writefile` cell into a package folder put on `sys.path`{install}. Their code is folded: "
        "expand a cell to read it. Edit `lib/` and `kernels/`, then rebuild."
    )


def kernel_cells(source_path: Path, repo: Path) -> list[Cell]:
    """The cells of a py:percent source, each with the line of the source file it starts on."""
    text, origin = source_path.read_text(), os.path.relpath(source_path, repo)
    notebook = jupytext.reads(text, fmt="py:percent")
    cells, position = [], 0
    for cell in notebook.cells:
        first = cell.source.split("\n")[0]
        found = text.find(first if cell.cell_type == "code" else f"# {first}", position) if first else position
        position = max(found, position)
        line = text[:position].count("\n") + 1
        cells.append(Cell(cell.cell_type, cell.source, origin, line, tags=tuple(cell.metadata.get("tags", ()))))
    return cells


def compose(kernel_dir: Path, repo: Path, wheels: bool = False) -> list[Cell]:
    """Every cell of the built notebook: the kernel's leading cells (title, what it does, CONFIG), then the library
    under one heading (stamp, inlined lib modules, the offline install of the wheels dataset when `wheels`, i.e.
    attached; it needs lib.data.paths) right before the kernel's first code cell that imports lib, then the rest."""
    source_path = kernel_dir / SOURCE_FILE
    if not source_path.is_file():
        raise BuildError(f"{source_path}: missing; every kernel folder needs a py:percent {SOURCE_FILE}")
    own = kernel_cells(source_path, repo)
    roots, importing = [], []
    for number, cell in enumerate(own):
        if cell.kind == "code":
            found = imported_lib_modules(parse_cell(cell), None, repo)
            roots += [(m, cell.first_line + line - 1) for m, line in found]
            importing += [number] if found else []
    modules = lib_closure(roots, os.path.relpath(source_path, repo), repo)
    if wheels:
        modules = sorted(
            set(modules) | set(lib_closure([("lib.data.paths", 1)], "build.py (wheels install cell)", repo))
        )
    library = [Cell("markdown", library_heading(modules, wheels), "build.py")]
    library.append(Cell("code", git_stamp(repo), "build.py", hidden=True))
    library += lib_cells(modules, repo) if modules else []
    library += [Cell("code", wheels_install(), "build.py", hidden=True)] if wheels else []
    code = [number for number, cell in enumerate(own) if cell.kind == "code"]
    split = (importing or code or [len(own)])[0]  # before the first lib import (or code cell, for the wheels)
    return own[:split] + library + own[split:]


def parse_cell(cell: Cell) -> ast.AST:
    """The Python of a code cell, magics blanked."""
    try:
        return ast.parse(python_text(cell.source))
    except SyntaxError as error:
        raise BuildError(
            f"{cell.origin} line {cell.first_line + error.lineno - 1}: syntax error: {error.msg}"
        ) from error


# === The offline checks: what an offline Kaggle kernel cannot do, named by cell, source file and line


CREDENTIAL_PATTERNS = [
    re.compile(r"KAGGLE_KEY['\"\]\s]*[=:]\s*['\"]?[A-Za-z0-9]{16,}"),
    re.compile(r"['\"][0-9a-fA-F]{32}['\"]"),
    re.compile(r"KGAT_[0-9a-fA-F]{16,}"),
    re.compile(r"\bhf_[A-Za-z0-9]{30,}"),
]
HUB_DOWNLOADS = {"hf_hub_download", "snapshot_download", "kagglehub"}
SLUG = r"[A-Za-z0-9_.-]+"
INPUT_PATH = re.compile(
    rf"/kaggle/input/((?:competitions/|(?:datasets|notebooks)/{SLUG}/|models/{SLUG}/{SLUG}/{SLUG}/{SLUG}/)?{SLUG})"
)


def live_secrets() -> list[str]:
    """The Kaggle key of this machine (environment or kaggle.json), to be sure it never enters a build."""
    secrets = [os.environ.get("KAGGLE_KEY", ""), kaggle_json().get("key", "")]
    return [secret for secret in secrets if len(secret) >= 8]


def line_problems(line: str, declared: set[str], secrets: list[str]) -> list[str]:
    """What is wrong with one line of text, by pattern; `declared`: the paths of declared_paths."""
    problems = []
    if re.search(r"\bpip3?\s+install\b", line) and "--no-index" not in line:
        problems.append("`pip install` without --no-index needs the internet; install from a wheels dataset")
    for path in INPUT_PATH.findall(line):
        if path not in declared:
            problems.append(
                f"reads /kaggle/input/{path}, which is not where a declared source is mounted; declare it in "
                f"{SETTINGS_FILE}, or read it through lib.data.paths.input_dir(slug)"
            )
    if any(pattern.search(line) for pattern in CREDENTIAL_PATTERNS) or any(s in line for s in secrets):
        problems.append("this looks like a credential; read secrets from the environment, never from code")
    return problems


def call_problems(tree: ast.AST, slugs: set[str], inlined: set[str], package: str | None, repo: Path):
    """(line, problem) for the calls and imports a parsed cell makes that an offline kernel cannot."""
    problems = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] + ([node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(name.split(".")[0] in HUB_DOWNLOADS for name in names):
                problems.append(
                    (node.lineno, f"imports {' '.join(names)}, which downloads from a hub; attach a dataset")
                )
        if not isinstance(node, ast.Call):
            continue
        func = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        first = node.args[0] if node.args else None
        literal = first.value if isinstance(first, ast.Constant) and isinstance(first.value, str) else None
        keywords = {k.arg: k.value for k in node.keywords}
        if func in ("from_pretrained", "SentenceTransformer") and literal and not literal.startswith("/"):
            problems.append((node.lineno, f"loads '{literal}' from a hub; load from a local dataset folder instead"))
        pretrained = keywords.get("pretrained")
        if func == "create_model" and isinstance(pretrained, ast.Constant) and pretrained.value is True:
            if "pretrained_cfg_overlay" not in keywords:
                problems.append((node.lineno, "timm pretrained=True downloads weights; pass pretrained_cfg_overlay"))
        if func in HUB_DOWNLOADS:
            problems.append((node.lineno, f"{func} downloads from a hub; attach a dataset instead"))
        if func == "input_dir" and literal and literal not in slugs:
            problems.append((node.lineno, f"input '{literal}' is not a declared source; add it to {SETTINGS_FILE}"))
        if func in ("import_module", "__import__") and literal and literal.split(".")[0] == "lib":
            problems.append((node.lineno, f"dynamic import of {literal} cannot be inlined; import it statically"))
    for imported, line in imported_lib_modules(tree, package, repo):
        if imported not in inlined:
            problems.append((line, f"imports {imported}, which is not inlined in this notebook"))
    return problems


def offline_problems(cells: list[Cell], metadata: dict, repo: Path) -> list[str]:
    """Every static offline violation in the built cells, each naming cell, source file and line."""
    inlined = {module_name(repo / c.origin, repo) for c in cells if c.origin.startswith("lib/")}
    slugs, declared, secrets = declared_slugs(metadata), declared_paths(metadata), live_secrets()
    problems = []
    for number, cell in enumerate(cells, start=1):
        where = f"cell {number} ({cell.origin}"
        lines = enumerate(cell.source.split("\n"), 1)
        found = [(i, p) for i, line in lines for p in line_problems(line, declared, secrets)]
        if cell.kind == "code":
            package = package_of(repo / cell.origin, repo) if cell.origin.startswith("lib/") else None
            found += call_problems(parse_cell(cell), slugs, inlined, package, repo)
        for line, problem in sorted(set(found)):
            source_line = cell.first_line + line - 1
            problems.append(f"{where} line {source_line}, cell line {line}): {problem}")
    return problems


# === Writing a build, and the command line


def to_notebook(cells: list[Cell]) -> nbformat.NotebookNode:
    """A valid nbformat v4 notebook with fixed cell ids, so that builds are byte-identical."""
    notebook = nbformat.v4.new_notebook()
    notebook.metadata = {"kernelspec": KERNELSPEC, "language_info": {"name": "python"}}
    for number, cell in enumerate(cells):
        make = nbformat.v4.new_code_cell if cell.kind == "code" else nbformat.v4.new_markdown_cell
        metadata = copy.deepcopy(HIDDEN_SOURCE) if cell.hidden else {}
        metadata |= {"tags": list(cell.tags)} if cell.tags else {}
        notebook.cells.append(make(cell.source, id=f"cell-{number:03d}", metadata=metadata))
    nbformat.validate(notebook)
    return notebook


def build_kernel(kernel_dir: Path, out_root: Path, repo: Path = ROOT) -> Path:
    """Build one kernel into out_root/<name>/ and return that folder; BuildError when it is not offline-safe."""
    name = kernel_dir.name
    metadata = kernel_dir_metadata(kernel_dir)
    cells = compose(kernel_dir, repo, wheels=WHEELS_SLUG in {s.split("/")[-1] for s in metadata["dataset_sources"]})
    problems = offline_problems(cells, metadata, repo)
    if problems:
        raise BuildError(f"{name}: {len(problems)} offline check(s) failed:\n  " + "\n  ".join(problems))
    out_dir = out_root / name
    if out_dir.resolve() in [kernel_dir.resolve(), (repo / "lib").resolve()]:
        raise BuildError(f"{out_dir}: refusing to write a build over sources; choose another output folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{name}.ipynb").write_text(nbformat.writes(to_notebook(cells)) + "\n")
    (out_dir / "kernel-metadata.json").write_text(json.dumps(metadata, indent=2) + "\n")
    return out_dir


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="kernel folders under kernels/ (default: all)")
    parser.add_argument("--kernels", type=Path, default=ROOT / "kernels", help="folder of kernel sources")
    parser.add_argument("--out", type=Path, default=ROOT / "build", help="output folder")
    args = parser.parse_args()
    names = args.names or sorted(p.name for p in args.kernels.iterdir() if (p / SETTINGS_FILE).is_file())
    try:
        for name in names:
            out_dir = build_kernel(args.kernels / name, args.out)
            print(f"built {out_dir / (name + '.ipynb')}")
    except BuildError as error:
        print(f"build failed: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
