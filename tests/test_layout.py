"""The layout of lib/: packages by stage, imports only downward, an inference kernel that inlines no training code; of
tools/: a package per job, run as modules, imported by no lib module; the make recipes run those modules."""

import ast
import re
from pathlib import Path

import pytest

import build

ROOT = Path(__file__).resolve().parent.parent
STAGES = {"data": 0, "models": 1, "neighbours": 2, "matching": 3, "second_stage": 4, "training": 5, "inference": 5}
SHARED = {"lib", "lib.devices", "lib.schema"}  # the package, the device choice, the config checker: every stage uses


def lib_imports(path: Path) -> set[str]:
    """The lib modules a file imports, anywhere in it, as dotted names (a from-import of a module counts as it)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("lib")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("lib"):
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in found if (ROOT / (name.replace(".", "/") + ".py")).is_file() or name == "lib"}


def stage(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in STAGES) else None


def test_every_lib_module_is_in_a_stage_package():
    loose = sorted(p.name for p in (ROOT / "lib").glob("*.py") if f"lib.{p.stem}" not in SHARED | {"lib.__init__"})
    assert loose == [], "put each module into the package of its stage"
    assert {p.name for p in (ROOT / "lib").iterdir() if p.is_dir() and p.name != "__pycache__"} == set(STAGES)


@pytest.mark.parametrize("package", sorted(STAGES))
def test_lib_imports_only_its_own_or_an_earlier_stage(package):
    for path in sorted((ROOT / "lib" / package).glob("*.py")):
        for imported in lib_imports(path) - SHARED:
            other = stage(imported)
            assert other is not None, f"{path}: imports {imported}, which is in no stage"
            later = STAGES[other] > STAGES[package] or (STAGES[other] == STAGES[package] and other != package)
            assert not later, f"{path.relative_to(ROOT)} imports {imported}: {other} comes after {package}"
    assert not lib_imports(ROOT / "lib" / "devices.py") | lib_imports(ROOT / "lib" / "schema.py")


def test_the_inference_kernels_inline_no_training_code():
    for kernel in ["shopee-inference", "optimize-ensemble"]:
        inlined = {cell.origin for cell in build.compose(ROOT / "kernels" / kernel, ROOT)}
        assert any(origin.startswith("lib/inference/") or origin.startswith("lib/matching/") for origin in inlined)
        assert not [origin for origin in inlined if origin.startswith("lib/training/")], kernel


# tools/: local-only tools, a package per job, each run as `python -m tools.<package>.<tool>` from the root


TOOLS = ROOT / "tools"
MAKEFILES = [ROOT / "Makefile", *sorted((ROOT / "make").glob("*.mk"))]


def tool_modules() -> list[Path]:
    return sorted(path for path in TOOLS.rglob("*.py") if "__pycache__" not in path.parts)


def project_imports(path: Path) -> set[str]:
    """The top-level names of the modules a file imports, anywhere in it (relative imports as '.')."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            found.add(node.module.split(".")[0] if node.level == 0 and node.module else ".")
    return found


def test_every_tool_is_in_a_package_of_its_job():
    assert [path.name for path in TOOLS.glob("*.py")] == ["__init__.py"], "put each tool into the package of its job"
    packages = [path for path in TOOLS.iterdir() if path.is_dir() and path.name != "__pycache__"]
    assert packages and all((package / "__init__.py").is_file() for package in packages)
    nested = [str(path.relative_to(ROOT)) for path in tool_modules() if len(path.relative_to(TOOLS).parts) > 2]
    assert nested == [], "tools/<package>/<tool>.py, one level"


def test_no_tool_changes_sys_path():
    """Tools run as modules from the repository's root, which puts lib, tools and build.py on the path."""
    for path in tool_modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute):
                assert ast.unparse(node.value) != "sys.path", f"{path.relative_to(ROOT)}: changes sys.path"


def test_tools_import_lib_build_and_tools_and_lib_imports_no_tool():
    for path in tool_modules():
        other = project_imports(path) & {".", "tests", "kernels"}  # of this repository, beside lib, tools, build.py
        assert not other, f"{path.relative_to(ROOT)}: imports from {other}"
    for path in sorted((ROOT / "lib").rglob("*.py")):
        assert not project_imports(path) & {"tools", "build"}, f"{path.relative_to(ROOT)} imports a tool or build.py"


def test_make_recipes_run_tool_modules_that_exist_and_no_inline_python():
    for makefile in MAKEFILES:
        recipes = [line for line in makefile.read_text().splitlines() if line.startswith("\t")]
        inline = [line.strip() for line in recipes if re.search(r"(python3?|PY\))\s+-c\b", line)]
        assert inline == [], f"{makefile.name}: a recipe runs an inline Python program; make it a tool with a main"
        for module in re.findall(r"-m (tools(?:\.\w+)+)", "\n".join(recipes)):
            assert (ROOT / (module.replace(".", "/") + ".py")).is_file(), f"{makefile.name}: no module {module}"
        scripts = re.findall(r"\S+/\w+\.py\b", "\n".join(recipes))
        assert [script for script in scripts if script.startswith("tools/")] == [], "run tools with python -m"
    includes = re.findall(r"^include (\S+)$", (ROOT / "Makefile").read_text(), re.M)
    assert sorted(includes) == sorted(str(path.relative_to(ROOT)) for path in MAKEFILES[1:])
