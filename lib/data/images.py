"""Reading posting images: a missing or unreadable file is replaced by a grey placeholder, never fatal, and counted.

A dataset of ~34k scraped photos can hold a broken file; one bad image must not end a two-hour run. The placeholder
keeps the posting (its title still counts) and the batch's shape. What could not be read is reported once per pass
over a folder, never a line per image. A folder that is missing or mostly unreadable is an error naming the folder
and the count: a wrong folder, whose placeholders would all look alike (the inference kernel then keeps its fallback
submission in the scoring rerun and stops in the commit run).
"""

from pathlib import Path

import numpy as np
from PIL import Image

PLACEHOLDER_SIZE = 256
UNREADABLE_LIMIT = 0.5  # the share of a pass's images over which the folder itself is wrong
EXAMPLES = 3  # unreadable images named in a report


class ImagesUnreadable(RuntimeError):
    """An image folder that is missing or mostly unreadable."""


def placeholder(size: int = PLACEHOLDER_SIZE) -> np.ndarray:
    """A mid-grey RGB image (size, size, 3), uint8."""
    return np.full((size, size, 3), 128, dtype=np.uint8)


def read_image(path: Path) -> tuple[np.ndarray, str]:
    """The RGB pixels (H, W, 3) uint8 of an image file and "", or a grey placeholder and why the file could not be
    read."""
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB")), ""
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        return placeholder(), f"{type(error).__name__}: {error}".replace(str(path), Path(path).name)


def require_folder(folder: Path) -> None:
    """ImagesUnreadable when the image folder does not exist (a wrong path, or a competition not attached)."""
    if not Path(folder).is_dir():
        raise ImagesUnreadable(
            f"{folder}: no such image folder; every posting's image is read from it (check the competition's files)"
        )


def unreadable_report(folder: Path, unreadable: list[str], total: int) -> str:
    """One line on the images of a pass over `folder` that were read as placeholders ("" when none was), with a few
    examples; ImagesUnreadable instead when more than UNREADABLE_LIMIT of the `total` images could not be read.

    Args:
        unreadable: "<file name>: <why>" of each image read as a placeholder (lib.data.dataset.Postings items).
    """
    if not unreadable:
        return ""
    examples = "; ".join(unreadable[:EXAMPLES]) + ("; ..." if len(unreadable) > EXAMPLES else "")
    line = f"{len(unreadable)} of {total} images unreadable in {folder} (grey placeholders stand in): {examples}"
    if len(unreadable) > UNREADABLE_LIMIT * total:
        raise ImagesUnreadable(f"{line}. More than {UNREADABLE_LIMIT:.0%} unreadable: is this the right folder?")
    return line
