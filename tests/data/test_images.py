"""lib.data.images: readable images as RGB arrays; missing, corrupt and truncated files replaced and counted, a folder
that is missing or mostly unreadable refused where images are needed."""

import numpy as np
import pytest
from PIL import Image

from lib.data.images import (
    EXAMPLES,
    PLACEHOLDER_SIZE,
    UNREADABLE_LIMIT,
    ImagesUnreadable,
    read_image,
    require_folder,
    unreadable_report,
)


def test_reads_rgb_pixels_of_any_mode(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 255, (20, 30, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "a.png")
    Image.fromarray(pixels[:, :, 0]).save(tmp_path / "grey.png")
    assert read_image(tmp_path / "a.png")[1] == ""
    assert np.array_equal(read_image(tmp_path / "a.png")[0], pixels)
    grey, problem = read_image(tmp_path / "grey.png")
    assert problem == "" and grey.shape == (20, 30, 3) and np.array_equal(grey[:, :, 2], pixels[:, :, 0])


def test_missing_corrupt_and_truncated_files_are_replaced_and_say_why(tmp_path):
    Image.fromarray(np.zeros((64, 64, 3), dtype=np.uint8)).save(tmp_path / "whole.jpg", quality=95)
    data = (tmp_path / "whole.jpg").read_bytes()
    (tmp_path / "truncated.jpg").write_bytes(data[: len(data) // 3])
    (tmp_path / "corrupt.jpg").write_bytes(b"not an image at all")
    reasons = {}
    for name in ["missing.jpg", "corrupt.jpg", "truncated.jpg"]:
        image, reasons[name] = read_image(tmp_path / name)
        assert image.shape == (PLACEHOLDER_SIZE, PLACEHOLDER_SIZE, 3) and image.dtype == np.uint8
        assert (image == 128).all()
    assert reasons["missing.jpg"].startswith("FileNotFoundError") and str(tmp_path) not in reasons["missing.jpg"]
    assert reasons["corrupt.jpg"].startswith("UnidentifiedImageError") and "corrupt.jpg" in reasons["corrupt.jpg"]
    assert reasons["truncated.jpg"] == "OSError: Truncated File Read"


def test_unreadable_images_are_one_line_and_a_mostly_unreadable_or_missing_folder_an_error(tmp_path):
    unreadable = [f"{i}.jpg: OSError: broken" for i in range(5)]
    assert unreadable_report(tmp_path, [], 10) == ""
    line = unreadable_report(tmp_path, unreadable, 10)  # half: not more than the limit
    assert UNREADABLE_LIMIT == 0.5 and "\n" not in line
    assert line.startswith(f"5 of 10 images unreadable in {tmp_path} (grey placeholders stand in): 0.jpg: OSError")
    assert line.count(".jpg") == EXAMPLES and line.endswith("; ...")
    with pytest.raises(ImagesUnreadable, match=rf"^5 of 9 images unreadable in {tmp_path} .* the right folder"):
        unreadable_report(tmp_path, unreadable, 9)
    missing = tmp_path / "test_images"
    with pytest.raises(ImagesUnreadable, match=rf"^{missing}: no such image folder"):
        require_folder(missing)
    require_folder(tmp_path)
