"""Where a kernel's inputs are: /kaggle/input on Kaggle, $KERNEL_INPUT_DIR elsewhere."""

import os
from pathlib import Path

KAGGLE_INPUT = "/kaggle/input"


def input_root() -> Path:
    """The folder holding every attached source, one sub-folder per slug."""
    return Path(os.environ.get("KERNEL_INPUT_DIR", KAGGLE_INPUT))


def input_dir(slug: str) -> Path:
    """The folder of one attached source (competition, dataset or kernel output), by its slug."""
    path = input_root() / slug
    if not path.is_dir():
        raise FileNotFoundError(
            f"{path}: the source '{slug}' is not attached. On Kaggle, add it to the kernel's data sources "
            "(its settings file in kernels/); locally, run the kernel with `make run` or set KERNEL_INPUT_DIR."
        )
    return path
