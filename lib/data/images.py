"""Reading posting images for training and embedding: a missing or unreadable file is logged and replaced, never fatal.

A dataset of ~34k scraped photos can hold a broken file; one bad image must not end a two-hour run. The
replacement is a mid-grey image, so the posting still gets its title's embedding and the batch keeps its shape.
"""

import logging
from pathlib import Path

import numpy as np
from PIL import Image

PLACEHOLDER_SIZE = 256
log = logging.getLogger(__name__)


def placeholder(size: int = PLACEHOLDER_SIZE) -> np.ndarray:
    """A mid-grey RGB image (size, size, 3), uint8."""
    return np.full((size, size, 3), 128, dtype=np.uint8)


def read_image(path: Path) -> np.ndarray:
    """The RGB pixels (H, W, 3) uint8 of an image file; a grey placeholder, with a warning, when it cannot be read."""
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        log.warning("%s: unreadable image (%s); a grey placeholder stands in for it", path, error)
        return placeholder()
