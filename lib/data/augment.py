"""Image transforms with albumentations: random views for training, a fixed resize and centre crop for evaluation.

Training (options of the experiment's image.augment): random resized crop (crop_scale: the share of the area kept),
horizontal flip (flip: its probability), rotation (rotate: at most this many degrees, half the images), colour
jitter (colour: brightness, contrast and saturation within 1 +/- colour, hue within +/- colour / 4; half the
images) and cutout (cutout: the probability of one grey hole of 10-30% of each side). A value of 0 turns a step off.
Both end normalised with the backbone's mean and std, as a (3, size, size) float tensor. `ProcessorTransform` is the
resize, centre crop and normalisation of a transformers image processor (CLIP's, SigLIP's), with its numbers.
"""

import os
from dataclasses import dataclass

import numpy as np
import torch
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as tv

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # albumentations asks PyPI for updates on import otherwise

import albumentations as A  # noqa: E402
from albumentations.pytorch import ToTensorV2  # noqa: E402

Stats = tuple[float, float, float]
RESAMPLES = {2: InterpolationMode.BILINEAR, 3: InterpolationMode.BICUBIC}  # PIL's codes, as processor configs name them


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


@dataclass(frozen=True)
class ProcessorTransform:
    """A transformers image processor's steps on an image, with its numbers: resized by torchvision (antialiased, as
    the processors' torchvision backend resizes), centre-cropped, rescaled and normalised. Called as an albumentations
    transform is: `transform(image=pixels)["image"]`, pixels (H, W, 3) uint8, gives a (3, H, W) float32 tensor.

    Attributes:
        size: (height, width) to resize to, or an int: the shorter side resized to it, the longer side to its
            proportional length truncated to an integer.
        crop: (height, width) of the centre crop after resizing (at most the resized size), or None.
        resample: a PIL resampling code of RESAMPLES.
        rescale: the factor pixels are multiplied by before normalising (1 / 255).
    """

    size: tuple[int, int] | int
    crop: tuple[int, int] | None
    resample: int
    mean: Stats
    std: Stats
    rescale: float

    def resized(self, height: int, width: int) -> tuple[int, int]:
        """The (height, width) an image of `height` x `width` is resized to."""
        if not isinstance(self.size, int):
            return self.size
        short, long = sorted((height, width))
        long = int(self.size * long / short)
        return (self.size, long) if height <= width else (long, self.size)

    def __call__(self, image: np.ndarray) -> dict:
        pixels = torch.tensor(image).permute(2, 0, 1)
        pixels = tv.resize(pixels, list(self.resized(*pixels.shape[-2:])), RESAMPLES[self.resample], antialias=True)
        if self.crop is not None:
            top, left = (pixels.shape[1] - self.crop[0]) // 2, (pixels.shape[2] - self.crop[1]) // 2
            pixels = pixels[:, top : top + self.crop[0], left : left + self.crop[1]]
        mean, std = (torch.tensor(values) * (1.0 / self.rescale) for values in (self.mean, self.std))
        return {"image": tv.normalize(pixels.float(), mean.tolist(), std.tolist())}
