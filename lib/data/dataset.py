"""Postings as batches: images through a transform, normalised titles, class labels, from loader worker processes.

Items are dicts; `Collate` stacks them into a batch dict ("image", "title", "label", and "unreadable": the images read
as placeholders) that lib.models.embed.model_inputs turns into what the model takes (titles tokenized in the main
process).
"""

import multiprocessing
from pathlib import Path

import cloudpickle
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, get_worker_info

from lib.data.images import read_image
from lib.data.text import normalise_title

LOADER_TIMEOUT_S = 300  # a batch takes seconds: a loader worker silent this long has hung
# Loader workers start from a fresh single-threaded server process: a fork of the Jupyter kernel, whose threads (ZMQ,
# heartbeat, OpenMP) may hold a lock at that moment, can leave the worker waiting forever (seen as workers in poll).
LOADER_START = "forkserver"
# Imported once by the server rather than by each worker at each start (a second or more a worker otherwise):
# lib.data.dataset (a built notebook writes lib where it imports it from) and the packages its items need.
WORKER_PRELOAD = ["lib.data.dataset", "torch", "albumentations.pytorch", "PIL.Image"]


class ByValue:
    """An object that reaches a worker process by value (cloudpickle): classes and functions defined in a notebook's
    own cells live in its __main__, which a worker started by LOADER_START cannot import (lib itself is importable:
    a built notebook writes it to files). Stands for the object here."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return cloudpickle.loads, (cloudpickle.dumps(self.target),)

    def __len__(self) -> int:
        return len(self.target)

    def __getitem__(self, index):
        return self.target[index]

    def __call__(self, *args):
        return self.target(*args)


def data_loader(dataset: Dataset, workers: int, **options) -> DataLoader:
    """A DataLoader with `workers` processes (0: in this process) started by LOADER_START, which receive the dataset,
    collate_fn and worker_init_fn by value; a worker silent for LOADER_TIMEOUT_S raises instead of stalling the kernel
    (a hung inference kernel loses the submission; a raised error leaves the fallback)."""
    if workers == 0:
        return DataLoader(dataset, num_workers=0, **options)
    context = multiprocessing.get_context(LOADER_START)
    context.set_forkserver_preload(WORKER_PRELOAD)
    sent = {key: ByValue(options[key]) for key in ("collate_fn", "worker_init_fn") if options.get(key) is not None}
    return DataLoader(
        ByValue(dataset),
        num_workers=workers,
        multiprocessing_context=context,
        timeout=LOADER_TIMEOUT_S,
        **options | sent,
    )


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
            pixels, problem = read_image(self.paths[index])
            item["image"] = self.transform(image=pixels)["image"]
            item["unreadable"] = f"{self.paths[index].name}: {problem}" if problem else ""
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
    """Items to a batch dict: stacked images, the titles as a list (lib.models.embed.model_inputs tokenizes them in the
    main process, so loader workers never receive a tokenizer), labels, and the images read as placeholders
    ("<file name>: <why>", lib.data.images)."""

    def __call__(self, items: list[dict]) -> dict:
        batch = {"title": [item["title"] for item in items]}
        if "image" in items[0]:
            batch["image"] = torch.stack([item["image"] for item in items])
            batch["unreadable"] = [item["unreadable"] for item in items if item["unreadable"]]
        if "label" in items[0]:
            batch["label"] = torch.tensor([item["label"] for item in items])
        return batch
