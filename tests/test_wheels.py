"""tools/env/wheels.py: the wheels list follows from the kernels' imports, Kaggle's image and the lock; a compiled
package the image holds is never upgraded; the committed tools/env/wheels.txt is the derived one."""

from importlib.metadata import distribution
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tools.env import wheels
from tools.env.lock_check import locked_versions

ROOT = Path(__file__).resolve().parent.parent
LOCK = locked_versions(ROOT / "requirements.lock")


def closure(name: str, seen: set[str] | None = None) -> set[str]:
    """Every distribution `name` needs on Linux with Python 3.12, itself included (naive recursion)."""
    seen = set() if seen is None else seen
    seen.add(canonicalize_name(name))
    for text in distribution(name).requires or []:
        requirement = Requirement(text)
        if requirement.marker and not requirement.marker.evaluate({"python_version": "3.12", "extra": ""}):
            continue
        if canonicalize_name(requirement.name) not in seen:
            closure(requirement.name, seen)
    return seen


def test_the_committed_list_is_the_derived_one():
    assert (ROOT / "tools" / "env" / "wheels.txt").read_text() == wheels.derived_text(), (
        "run `python -m tools.env.wheels list`"
    )


def test_kernel_imports_are_the_third_party_top_level_modules_of_lib_and_kernels(tmp_path):
    (tmp_path / "lib" / "sub").mkdir(parents=True)
    (tmp_path / "lib" / "a.py").write_text("import os, numpy.linalg\nfrom lib import b\nfrom . import c\n")
    (tmp_path / "lib" / "sub" / "d.py").write_text("from PIL import Image\nimport lib.sub\n")
    (tmp_path / "kernels" / "k").mkdir(parents=True)
    (tmp_path / "kernels" / "k" / "notebook.py").write_text("# %%\nimport yaml\nfrom pathlib import Path\n")
    (tmp_path / "tools").mkdir()
    (tmp_path / "tools" / "x.py").write_text("import faiss\n")
    assert wheels.kernel_imports(tmp_path) == {"numpy", "PIL", "yaml"}
    assert wheels.distributions_of({"numpy", "PIL", "yaml"}) == ["numpy", "pillow", "pyyaml"]
    with pytest.raises(wheels.WheelsError, match="surely_absent_module"):
        wheels.distributions_of({"numpy", "surely_absent_module"})


def test_a_root_the_image_lacks_comes_with_every_dependency_the_image_lacks():
    listed = wheels.wheel_list(["mlflow-skinny"], {}, LOCK, "3.12")
    assert set(listed) == closure("mlflow-skinny")
    assert all(line.split("  # ")[0] == LOCK[name] for name, line in listed.items())
    assert listed["mlflow-skinny"].endswith("imported by the kernels; not in the image")


def test_the_image_serves_what_it_holds_at_a_version_the_requirement_accepts():
    image = {name: LOCK[name] for name in closure("mlflow-skinny")} | {"certifi": "2026.5.20"}
    assert wheels.wheel_list(["numpy"], image | {"numpy": "2.0.2"}, LOCK, "3.12") == {}
    del image["mlflow-skinny"], image["databricks-sdk"]  # the image's own packages are taken as consistent
    listed = wheels.wheel_list(["mlflow-skinny"], image, LOCK, "3.12")
    certifi = [r for r in distribution("databricks-sdk").requires if r.startswith("certifi")][0]
    assert not Requirement(certifi).specifier.contains("2026.5.20")
    assert list(listed) == ["certifi", "databricks-sdk", "mlflow-skinny"]
    assert listed["certifi"] == f"{LOCK['certifi']}  # databricks-sdk requires {certifi}; the image has 2026.5.20"


def test_a_compiled_package_the_image_holds_is_never_upgraded():
    image = {name: LOCK[name] for name in closure("mlflow-skinny")} | {"protobuf": "4.21.0"}
    del image["mlflow-skinny"], image["databricks-sdk"]
    assert wheels.is_compiled("protobuf") and not wheels.is_compiled("certifi")
    with pytest.raises(wheels.WheelsError, match=r"image holds protobuf==4\.21\.0, which is compiled"):
        wheels.wheel_list(["mlflow-skinny"], image, LOCK, "3.12")


def test_the_image_python_comes_from_its_file(tmp_path):
    assert wheels.image_python() == "3.12"
    (tmp_path / "image.txt").write_text("numpy==2.0.2\n")
    with pytest.raises(wheels.WheelsError, match="no '# python X.Y.Z' line"):
        wheels.image_python(tmp_path / "image.txt")


def test_the_kaggle_image_environment_holds_what_the_kernels_and_the_wheels_need_from_the_image():
    listed = set(locked_versions(wheels.WHEELS_LIST))
    needed = {
        canonicalize_name(Requirement(text).name)
        for name in listed
        for text in distribution(name).requires or []
        if not Requirement(text).marker or Requirement(text).marker.evaluate({"python_version": "3.12", "extra": ""})
    }
    needed |= set(wheels.kernel_needs())
    image_lock = locked_versions(ROOT / "requirements-kaggle-image.lock")
    missing = sorted(needed - listed - set(image_lock))
    assert not missing, f"add {missing} to requirements-kaggle-image.in (the image holds them), then `make lock`"
