"""Postings as model batches: images through a transform, normalised titles tokenized, class labels.

Items are dicts; `Collate` stacks them into the batch dict lib.models takes ("image", "input_ids",
"attention_mask", "label"), with only the keys the model's branches need.
"""

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

from lib.data.images import read_image
from lib.data.text import normalise_title

LOADER_TIMEOUT_S = 300  # a batch takes seconds: a loader worker silent this long has hung


def loader_timeout(workers: int) -> int:
    """DataLoader's `timeout` for `workers` loader processes: a hung worker raises instead of stalling the kernel (a
    hung inference kernel loses the submission; a raised error leaves the fallback). 0 without worker processes."""
    return LOADER_TIMEOUT_S if workers > 0 else 0


class Postings(Dataset):
    """Postings of one frame (posting_id, image, title): each item its transformed image, title and label.

    Args:
        image_dir: the folder of the frame's images (train_images/ or test_images/).
        transform: an albumentations transform to a (3, H, W) tensor; None: no image (a text model).
        labels: a class index per row, for the loss; None: no label.
    """

    def __init__(self, frame, image_dir: Path, transform=None, labels: np.ndarray | None = None):
        self.paths = [Path(image_dir) / name for name in frame.image]
        self.titles = [normalise_title(title) for title in frame.title]
        self.transform = transform
        self.labels = labels

    def __len__(self) -> int:
        return len(self.titles)

    def __getitem__(self, index: int) -> dict:
        item = {"title": self.titles[index]}
        if self.transform is not None:
            item["image"] = self.transform(image=read_image(self.paths[index]))["image"]
        if self.labels is not None:
            item["label"] = int(self.labels[index])
        return item

    def reseed(self, seed: int) -> None:
        """Seed the random transform (albumentations keeps its own generator)."""
        if self.transform is not None:
            self.transform.set_random_seed(seed % 2**32)


def seed_worker(worker_id: int) -> None:
    """DataLoader worker_init_fn: each worker's transform seeded from its torch seed (loader seed + worker id)."""
    get_worker_info().dataset.reseed(torch.initial_seed())


class Collate:
    """Items to a batch dict: stacked images, tokenized titles (when `tokenize` is given), labels."""

    def __init__(self, tokenize=None):
        self.tokenize = tokenize

    def __call__(self, items: list[dict]) -> dict:
        batch = {}
        if "image" in items[0]:
            batch["image"] = torch.stack([item["image"] for item in items])
        if self.tokenize is not None:
            batch |= self.tokenize([item["title"] for item in items])
        if "label" in items[0]:
            batch["label"] = torch.tensor([item["label"] for item in items])
        return batch
