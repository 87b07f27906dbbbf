"""Image transforms with albumentations: random views for training, a fixed resize and centre crop for evaluation.

Training (options of the experiment's image.augment): random resized crop (crop_scale: the share of the area kept),
horizontal flip (flip: its probability), rotation (rotate: at most this many degrees, half the images), colour
jitter (colour: brightness, contrast and saturation within 1 +/- colour, hue within +/- colour / 4; half the
images) and cutout (cutout: the probability of one grey hole of 10-30% of each side). A value of 0 turns a step off.
Both end normalised with the backbone's mean and std, as a (3, size, size) float tensor.
"""

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # albumentations asks PyPI for updates on import otherwise

import albumentations as A  # noqa: E402
from albumentations.pytorch import ToTensorV2  # noqa: E402

Stats = tuple[float, float, float]


def train_transform(size: int, augment: dict, mean: Stats, std: Stats, seed: int) -> A.Compose:
    """Random views of an image, `size` px square, reproducible from `seed` (reseed per worker with set_random_seed)."""
    steps = [A.RandomResizedCrop(size=(size, size), scale=tuple(augment["crop_scale"]))]
    if augment["flip"]:
        steps.append(A.HorizontalFlip(p=augment["flip"]))
    if augment["rotate"]:
        steps.append(A.Rotate(limit=augment["rotate"], fill=128, p=0.5))
    if augment["colour"]:
        strength = augment["colour"]
        steps.append(A.ColorJitter(strength, strength, strength, strength / 4, p=0.5))
    if augment["cutout"]:
        steps.append(A.CoarseDropout((1, 1), (0.1, 0.3), (0.1, 0.3), fill=128, p=augment["cutout"]))
    return A.Compose([*steps, A.Normalize(mean, std), ToTensorV2()], seed=seed)


def eval_transform(size: int, mean: Stats, std: Stats) -> A.Compose:
    """The shorter side resized to `size`, the centre square cropped, normalised: deterministic."""
    steps = [A.SmallestMaxSize(max_size=size), A.CenterCrop(size, size), A.Normalize(mean, std), ToTensorV2()]
    return A.Compose(steps, seed=0)


def backbone_stats(model) -> tuple[Stats, Stats]:
    """The pixel mean and std the model's timm backbone expects (its pretrained config)."""
    config = model.image.backbone.pretrained_cfg
    return tuple(config["mean"]), tuple(config["std"])
