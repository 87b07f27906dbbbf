"""The layout of lib/: packages by stage, imports only downward, an inference kernel that inlines no training code."""

import ast
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
