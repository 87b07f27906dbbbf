"""lib.data.augment: shapes and normalisation, reproducible random views, each option switchable, a fixed evaluation."""

import numpy as np
import pytest
import torch

from lib.data.augment import eval_transform, train_transform

AUGMENT = {"crop_scale": [0.5, 1.0], "flip": 0.5, "rotate": 15.0, "colour": 0.2, "cutout": 0.5}
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
IMAGE = np.random.default_rng(0).integers(0, 255, (90, 120, 3), dtype=np.uint8)


def views(transform, count=4) -> list[torch.Tensor]:
    return [transform(image=IMAGE)["image"] for _ in range(count)]


def test_training_views_are_tensors_of_the_size_and_reproducible_from_the_seed():
    first = views(train_transform(48, AUGMENT, MEAN, STD, seed=5))
    again = views(train_transform(48, AUGMENT, MEAN, STD, seed=5))
    other = views(train_transform(48, AUGMENT, MEAN, STD, seed=6))
    assert all(view.shape == (3, 48, 48) and view.dtype == torch.float32 for view in first)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not all(torch.equal(a, b) for a, b in zip(first, other))
    assert not torch.equal(first[0], first[1]), "successive views must differ"


def test_everything_off_but_a_full_crop_is_a_plain_resize():
    still = {"crop_scale": [1.0, 1.0], "flip": 0.0, "rotate": 0.0, "colour": 0.0, "cutout": 0.0}
    transform = train_transform(32, still, MEAN, STD, seed=0)
    assert len(transform.transforms) == 3  # crop, normalise, to tensor
    flat = np.full((40, 40, 3), 200, dtype=np.uint8)
    view = transform(image=flat)["image"]
    expected = (200 / 255 - np.array(MEAN)) / np.array(STD)
    assert torch.allclose(view.mean((1, 2)), torch.tensor(expected, dtype=torch.float32), atol=1e-5)


@pytest.mark.parametrize("size", [32, 64])
def test_evaluation_resizes_the_short_side_and_crops_the_centre(size):
    transform = eval_transform(size, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    image = np.zeros((60, 120, 3), dtype=np.uint8)
    image[:, 30:90] = 255  # a white centre square between black side bands
    view = transform(image=image)["image"]
    assert view.shape == (3, size, size)
    assert view[:, :, 1:-1].min() > 0.9, "the centre square fills the crop"
    assert torch.equal(view, transform(image=image)["image"])
