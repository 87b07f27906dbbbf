"""The wheels dataset: what the kernels need that Kaggle's image lacks, derived from facts, and its download.

Usage: python -m tools.env.wheels list                          rewrite tools/env/wheels.txt from those facts
       python -m tools.env.wheels download [--python X.Y] --out DIR  its wheels for that Python (default: the image's)

The facts: the modules lib/ and kernels/ import, Kaggle's image (tools/env/kaggle_image.txt) and requirements.lock. A
distribution the image lacks is listed at the lock's version with every dependency the image does not satisfy; what
the image holds is left to it. The rules: docs/environments.md, "The wheels dataset".
"""

import argparse
import ast
import re
import shutil
import subprocess
import sys
import tempfile
from importlib.metadata import PackageNotFoundError, distribution, packages_distributions
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tools.env.lock_check import locked_versions

ROOT = Path(__file__).resolve().parents[2]
WHEELS_LIST = ROOT / "tools" / "env" / "wheels.txt"
KAGGLE_IMAGE = ROOT / "tools" / "env" / "kaggle_image.txt"
LOCK = ROOT / "requirements.lock"
# Kaggle's image runs Ubuntu 22.04 (glibc 2.35) on x86_64: every manylinux tag that glibc accepts.
KAGGLE_PLATFORMS = [f"manylinux_2_{minor}_x86_64" for minor in range(35, 16, -1)] + ["manylinux2014_x86_64"]
# Needed by the kernels at run time though no kernel imports them: MLflow's SQLite store (lib/training/tracking.py)
# imports these, and mlflow-skinny leaves them out of its requirements (`make test-kaggle-image` found each one
# missing).
RUN_TIME_NEEDS = ["alembic", "cryptography", "sqlalchemy"]
# Imported only where a GPU is present (lib/second_stage/forest.py: cuML's forest inference) and held by Kaggle's GPU
# image; never installed here (docs/environments.md: cuML clashes with the lock's torch and computes nothing without
# a GPU), so these are left to the image and never go into the wheels dataset.
GPU_IMAGE_ONLY = {"cuml": "cuml-cu12"}
HEADER = """# Made by `python -m tools.env.wheels list`: do not edit; change its inputs and regenerate.
# What the kernels import that Kaggle's image (tools/env/kaggle_image.txt) lacks, with the dependencies it does not
# satisfy, each at the version of requirements.lock. `make wheels` downloads them for the image's Python into the
# wheels dataset; kernels install them offline with pip --no-index in a cell of build.py.
"""


class WheelsError(Exception):
    """A wheels list or download that cannot be made; the message names the package and the fix."""


def image_versions(path: Path = KAGGLE_IMAGE) -> dict[str, str]:
    """Package (canonical name) -> the version Kaggle's image holds."""
    return locked_versions(path)


def image_python(path: Path = KAGGLE_IMAGE) -> str:
    """The image's Python as major.minor, from the `# python X.Y.Z` line."""
    found = re.search(r"^# python (\d+\.\d+)\.\d+$", path.read_text(), re.M)
    if not found:
        raise WheelsError(f"{path}: no '# python X.Y.Z' line; add the image's Python version")
    return found[1]


def kernel_imports(root: Path = ROOT) -> set[str]:
    """Top-level modules that lib/ and the kernels import, less the standard library and lib itself."""
    files = [*sorted((root / "lib").rglob("*.py")), *sorted((root / "kernels").glob("*/notebook.py"))]
    modules = set()
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                modules |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                modules.add(node.module.split(".")[0])
    return modules - set(sys.stdlib_module_names) - {"lib"}


def distributions_of(modules: set[str]) -> list[str]:
    """The installed distribution (canonical name) providing each module; an unknown module is refused."""
    providers = packages_distributions()
    unknown = sorted(module for module in modules if module not in providers)
    if unknown:
        raise WheelsError(f"no installed distribution provides {unknown}; add it to requirements.in and `make lock`")
    return sorted({canonicalize_name(providers[module][0]) for module in modules})


def kernel_needs() -> list[str]:
    """Every distribution the kernels need directly: those their imports come from, and RUN_TIME_NEEDS; the
    GPU_IMAGE_ONLY modules are checked to be in Kaggle's image and left to it."""
    modules, image = kernel_imports(), image_versions()
    absent = sorted(name for module, name in GPU_IMAGE_ONLY.items() if module in modules and name not in image)
    if absent:
        raise WheelsError(f"{absent} are imported on a GPU only and missing from {KAGGLE_IMAGE.name}; update it")
    return sorted(set(distributions_of(modules - set(GPU_IMAGE_ONLY))) | set(RUN_TIME_NEEDS))


def is_compiled(name: str) -> bool:
    """Whether the installed distribution carries compiled code (its wheel is not pure Python)."""
    wheel = distribution(name).read_text("WHEEL") or ""
    return "Root-Is-Purelib: false" in wheel


def dependencies(name: str, python: str) -> list[Requirement]:
    """The installed distribution's requirements that apply on Kaggle (Linux x86_64, `python`, no extras)."""
    environment = {"python_version": python, "sys_platform": "linux", "platform_machine": "x86_64", "extra": ""}
    found = [Requirement(text) for text in distribution(name).requires or []]
    return [r for r in found if r.marker is None or r.marker.evaluate(environment)]


def wheel_list(roots: list[str], image: dict[str, str], lock: dict[str, str], python: str) -> dict[str, str]:
    """Package -> 'version  # why' for each root the image lacks and each dependency the image does not satisfy."""
    listed: dict[str, str] = {}
    pending = [(root, None, "imported by the kernels") for root in roots]
    while pending:
        name, requirement, needed_by = pending.pop()
        name = canonicalize_name(name)
        held = image.get(name)
        if name in listed or (held is not None and (requirement is None or requirement.specifier.contains(held))):
            continue
        if held is not None and is_compiled(name):
            raise WheelsError(
                f"{needed_by} requires {requirement}, but Kaggle's image holds {name}=={held}, which is compiled: "
                f"installing another version over it can leave the old module loaded; pin the package that needs "
                f"it in requirements.in to a version whose requirement {held} meets, then `make lock`"
            )
        if name not in lock:
            raise WheelsError(f"{name} ({needed_by}) is not in {LOCK.name}; add it to requirements.in, `make lock`")
        why = needed_by if requirement is None else f"{needed_by} requires {requirement}"
        listed[name] = f"{lock[name]}  # {why}; " + (f"the image has {held}" if held else "not in the image")
        pending += [(r.name, r, name) for r in dependencies(name, python)]
    return dict(sorted(listed.items()))


def derived_text() -> str:
    """The content tools/env/wheels.txt must have, from this environment, tools/env/kaggle_image.txt and the lock."""
    roots = [name for name in kernel_needs() if name not in image_versions()]
    listed = wheel_list(roots, image_versions(), locked_versions(LOCK), image_python())
    return HEADER + "".join(f"{name}=={line}\n" for name, line in listed.items())


def download(requirements: Path, target: Path, python: str) -> list[Path]:
    """Download the wheels of requirements for `python` on manylinux x86_64 into target, replacing them.

    Only the listed packages are fetched (--no-deps, binary only); the list is copied as target/requirements.txt for
    the kernels' install line. A line with no such wheel fails the download, naming the fix.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"{target.name}-", dir=target.parent) as tmp:
        platforms = [argument for platform in KAGGLE_PLATFORMS for argument in ("--platform", platform)]
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--dest", tmp]
        command += ["--python-version", python, "--implementation", "cp", *platforms, "-r", str(requirements)]
        if subprocess.run(command).returncode != 0:
            raise WheelsError(
                f"{requirements}: pip found no wheel for Python {python} on manylinux x86_64 for some line "
                "(see above); pin a version that has one"
            )
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir()
        for wheel in sorted(Path(tmp).iterdir()):
            shutil.move(wheel, target / wheel.name)
    shutil.copyfile(requirements, target / "requirements.txt")
    return sorted(target.glob("*.whl"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["list", "download"])
    parser.add_argument("--python", help="major.minor of the target Python (default: Kaggle's image's)")
    parser.add_argument("--out", type=Path, help="download folder (download only)")
    args = parser.parse_args()
    if args.action == "download" and args.out is None:
        parser.error("download needs --out")
    try:
        if args.action == "list":
            WHEELS_LIST.write_text(derived_text())
            print(f"wrote {WHEELS_LIST.relative_to(ROOT)}")
        else:
            found = download(WHEELS_LIST, args.out, args.python or image_python())
            print(f"{len(found)} wheel(s) in {args.out}")
    except (WheelsError, PackageNotFoundError) as error:
        print(f"wheels: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
