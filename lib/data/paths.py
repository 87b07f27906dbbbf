"""Where a kernel's inputs are: under /kaggle/input on Kaggle ($KERNEL_INPUT_DIR elsewhere), in any of its layouts.

Kaggle mounts an attached source, under the input root, at competitions/<slug> (the competition), at
datasets/<owner>/<slug> (a dataset), notebooks/<owner>/<slug> (a kernel's output) or
models/<owner>/<model>/<framework>/<instance>/<version> (a Kaggle model) on current workers, and at <slug> on older
images and for some attachments. A source is found by its slug (a model by its instance) in whichever layout holds it.
"""

import os
from pathlib import Path

from lib.data.competition import COMPETITION

KAGGLE_INPUT = "/kaggle/input"
PATTERNS = ("competitions/*", "datasets/*/*", "notebooks/*/*", "models/*/*/*/*/*")  # where today's layout puts one
LAYOUTS = {pattern.split("/")[0] for pattern in PATTERNS}  # folders of the current layout, never sources themselves
SHOWN = 20  # entries listed per folder when a source is missing


def input_root() -> Path:
    """The folder holding every attached source."""
    return Path(os.environ.get("KERNEL_INPUT_DIR", KAGGLE_INPUT))


def mounts() -> list[tuple[str, Path]]:
    """(slug, folder) of every source under the input root, in every layout; current layout first, flat last."""
    root = input_root()
    if not root.is_dir():
        return []
    found = [path for pattern in PATTERNS for path in sorted(root.glob(pattern))]
    found += sorted(path for path in root.iterdir() if path.name not in LAYOUTS)
    return [(name_of(folder, root), folder) for folder in found if folder.is_dir()]


def name_of(folder: Path, root: Path) -> str:
    """What a mounted source is found by: its slug, or for a Kaggle model (models/.../<instance>/<version>) its
    instance."""
    return folder.parent.name if folder.relative_to(root).parts[0] == "models" else folder.name


def input_dir(slug: str) -> Path:
    """The folder of one attached source (competition, dataset or kernel output), by its slug."""
    found = [folder for name, folder in mounts() if name == slug]
    if not found:
        raise FileNotFoundError(not_attached(slug))
    owned = [folder for folder in found if len(folder.relative_to(input_root()).parts) == 3]  # <layout>/<owner>/<slug>
    if len(owned) > 1:
        raise ValueError(
            f"source '{slug}' is attached more than once, from {' and '.join(map(str, owned))} (owners "
            f"{', '.join(folder.parent.name for folder in owned)}); attach only the one the kernel should read"
        )
    return found[0]


def attached_sources() -> dict[str, Path]:
    """Every attached source, slug -> its folder as input_dir finds it."""
    return {slug: input_dir(slug) for slug, _ in mounts()}


def not_attached(slug: str) -> str:
    """Why a source is missing, what the input root holds two levels deep, and how to attach it."""
    root = input_root()
    message = (
        f"source '{slug}' is not attached: none of competitions/{slug}, datasets/*/{slug}, notebooks/*/{slug}, "
        f"models/*/*/*/{slug}/* or {slug} is under {root}, which holds:\n{listing(root)}\n"
        "On Kaggle, add it to the kernel's data sources (its kernel.yaml in kernels/); locally, run the kernel with "
        "`make run` or set KERNEL_INPUT_DIR."
    )
    if slug == COMPETITION:
        message += (
            " Kaggle mounts competition data only after the competition's rules were accepted in the browser "
            f"(https://www.kaggle.com/competitions/{slug}/rules) by the kernel's owner."
        )
    return message


def listing(folder: Path, depth: int = 2, indent: str = "  ") -> str:
    """What a folder holds, `depth` levels deep, one entry a line (folders end in /)."""
    if not folder.is_dir():
        return f"{indent}(no such folder)"
    entries = sorted(folder.iterdir())
    if not entries:
        return f"{indent}(nothing)"
    lines = []
    for entry in entries[:SHOWN]:
        lines.append(f"{indent}{entry.name}{'/' if entry.is_dir() else ''}")
        if entry.is_dir() and depth > 1:
            lines.append(listing(entry, depth - 1, indent + "  "))
    if len(entries) > SHOWN:
        lines.append(f"{indent}... and {len(entries) - SHOWN} more")
    return "\n".join(lines)


def input_path(relative: str) -> str:
    """A `<slug>/<path>` of an experiment as a path under the input root; the slug must be attached."""
    slug, _, rest = relative.partition("/")
    return str(input_dir(slug) / rest) if rest else str(input_dir(slug))
