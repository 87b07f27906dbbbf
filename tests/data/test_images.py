"""lib.data.images: readable images as RGB arrays; missing, corrupt and truncated files logged and replaced."""

import logging

import numpy as np
from PIL import Image

from lib.data.images import PLACEHOLDER_SIZE, read_image


def test_reads_rgb_pixels_of_any_mode(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 255, (20, 30, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "a.png")
    Image.fromarray(pixels[:, :, 0]).save(tmp_path / "grey.png")
    assert np.array_equal(read_image(tmp_path / "a.png"), pixels)
    grey = read_image(tmp_path / "grey.png")
    assert grey.shape == (20, 30, 3) and np.array_equal(grey[:, :, 2], pixels[:, :, 0])


def test_missing_corrupt_and_truncated_files_are_replaced_and_logged(tmp_path, caplog):
    Image.fromarray(np.zeros((64, 64, 3), dtype=np.uint8)).save(tmp_path / "whole.jpg", quality=95)
    data = (tmp_path / "whole.jpg").read_bytes()
    (tmp_path / "truncated.jpg").write_bytes(data[: len(data) // 3])
    (tmp_path / "corrupt.jpg").write_bytes(b"not an image at all")
    with caplog.at_level(logging.WARNING, logger="lib.data.images"):
        for name in ["missing.jpg", "corrupt.jpg", "truncated.jpg"]:
            image = read_image(tmp_path / name)
            assert image.shape == (PLACEHOLDER_SIZE, PLACEHOLDER_SIZE, 3) and image.dtype == np.uint8
            assert (image == 128).all()
    logged = [record.getMessage() for record in caplog.records]
    assert len(logged) == 3
    for name, message in zip(["missing.jpg", "corrupt.jpg", "truncated.jpg"], logged):
        assert str(tmp_path / name) in message and "grey placeholder" in message
