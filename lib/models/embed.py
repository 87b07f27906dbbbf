"""Embeddings of postings by a trained model: the one embedding loop, for validation in training and for inference.

`posting_embeddings` is what an inference kernel calls with a training kernel's model.pt: the L2-normalised
embeddings of each output ("concat", "image", "text"), computed as in validation (the checkpoint's last image size,
resized and centre-cropped; normalised titles). `embed_postings` is the same pass for any model with `embed` and
`text` (the frozen pretrained encoders of lib.models.backbone and lib.models.image_text too).
"""

import functools
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from lib.data import images, paths
from lib.data.augment import backbone_stats, eval_transform
from lib.data.dataset import Collate, Postings, data_loader
from lib.models import load_model, read_checkpoint


def eval_dataset(model, frame, image_dir: Path, size: int, labels: np.ndarray | None = None) -> Postings:
    """The postings as the model sees them in evaluation: a fixed resize and centre crop, no randomness."""
    transform = eval_transform(size, *backbone_stats(model)) if model.image is not None else None
    return Postings(frame, image_dir, transform, labels)


def model_inputs(model, batch: dict) -> dict:
    """A loader's batch (lib.data.dataset.Collate) as `model` takes it: the titles tokenized here by its text branch,
    or dropped without one, every tensor on the model's device (the names of unreadable images are left out)."""
    titles = batch.pop("title")
    batch.pop("unreadable", None)
    if model.text is not None:
        batch |= model.text.tokenize(titles)
    device = next(model.parameters()).device
    return {key: value.to(device) for key, value in batch.items()}


def posting_embeddings(
    checkpoint: Path,
    frame,
    image_dir: Path,
    text_model_dir: Path | None = None,
    batch_size: int = 64,
    workers: int = 2,
    device: torch.device | str | None = None,
) -> dict[str, np.ndarray]:
    """Each output's L2-normalised float32 embeddings (rows of `frame`) by the model of a training checkpoint.

    Args:
        checkpoint: a model.pt of a training kernel's output.
        image_dir: the folder of the frame's images.
        text_model_dir: the transformers folder of the text branch; default: the attached source the experiment
            named (model.text.model_dir, e.g. all-minilm-l6-v2), wherever the input root is now.
        device: default CUDA when present, else the CPU.

    Raises:
        lib.data.images.ImagesUnreadable: the image folder is missing or mostly unreadable; a few unreadable images
            are one printed line, grey placeholders standing in for them.
    """
    extra = read_checkpoint(checkpoint)["extra"]
    text = extra["config"]["model"].get("text")
    if text_model_dir is None and text is not None:
        text_model_dir = paths.input_path(text["model_dir"])
    model = load_model(checkpoint, text_model_dir, device)
    dataset = eval_dataset(model, frame, image_dir, extra["image_size"])
    desc = f"embeddings ({Path(checkpoint).parent.name})"
    return embed_postings(model, dataset, image_dir, batch_size, workers, desc)


@torch.no_grad()
def embed_postings(model, dataset: Postings, image_dir: Path, batch_size: int, workers: int, desc: str) -> dict:
    """Each output's embeddings of a model (one with `embed` and `text`, as lib.models.ProductModel) of the dataset's
    postings, read by `workers` loader processes, on the model's device (autocast on CUDA).

    Raises:
        lib.data.images.ImagesUnreadable: the dataset reads images and their folder is missing or mostly unreadable;
            a few unreadable images are one printed line, grey placeholders standing in for them.
    """
    if dataset.transform is not None:
        images.require_folder(image_dir)
    device = next(model.parameters()).device
    loader = data_loader(dataset, workers, batch_size=batch_size, collate_fn=Collate())
    autocast = functools.partial(torch.autocast, device.type, enabled=device.type == "cuda")
    unreadable: list[str] = []
    outputs = embed_batches(model, loader, autocast, desc, unreadable)
    report = images.unreadable_report(image_dir, unreadable, len(dataset))
    if report:
        print(report)
    return outputs


def embed_batches(model, loader, autocast, desc: str, unreadable: list[str], gather=None, show: bool = True):
    """Each output's embeddings of the loader's batches, in order, as float32 arrays: the one embedding loop.

    Args:
        autocast: a context manager factory (torch.autocast or the accelerator's).
        unreadable: receives the images of the batches read as placeholders ("<file name>: <why>").
        gather: applied to each batch's embeddings (the accelerator's gather across processes), if given.
        show: whether to show the progress bar.
    """
    parts: dict[str, list[np.ndarray]] = {}
    for batch in tqdm(loader, desc=desc, disable=not show):
        unreadable += batch.get("unreadable", [])
        with autocast():
            embeddings = model.embed(model_inputs(model, batch))
            if gather is not None:
                embeddings = gather(embeddings)
        for output, values in embeddings.items():
            parts.setdefault(output, []).append(values.float().cpu().numpy())
    return {output: np.concatenate(values) for output, values in parts.items()}
