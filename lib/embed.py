"""Embeddings of postings from a trained model, and their CV: F1 of each output and of the union of outputs.

`posting_embeddings` is what an inference kernel calls with a training kernel's model.pt: the L2-normalised
embeddings of each output ("concat", "image", "text"), computed as in validation (the checkpoint's last image size,
resized and centre-cropped; normalised titles).
"""

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from lib import knn, matching, thresholds
from lib.augment import backbone_stats, eval_transform
from lib.dataset import Collate, Postings, loader_timeout
from lib.experiment import input_path
from lib.models import load_model, read_checkpoint


def eval_dataset(model, frame, image_dir: Path, size: int, labels: np.ndarray | None = None) -> Postings:
    """The postings as the model sees them in evaluation: a fixed resize and centre crop, no randomness."""
    transform = eval_transform(size, *backbone_stats(model)) if model.image is not None else None
    return Postings(frame, image_dir, transform, labels)


def collate_for(model) -> Collate:
    """The batch maker of a model: titles tokenized by its text branch, if it has one."""
    return Collate(model.text.tokenize if model.text is not None else None)


@torch.no_grad()
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
    """
    extra = read_checkpoint(checkpoint)["extra"]
    text = extra["config"]["model"].get("text")
    if text_model_dir is None and text is not None:
        text_model_dir = input_path(text["model_dir"])
    model = load_model(checkpoint, text_model_dir, device)
    device = next(model.parameters()).device
    loader = DataLoader(
        eval_dataset(model, frame, image_dir, extra["image_size"]),
        batch_size,
        num_workers=workers,
        collate_fn=collate_for(model),
        timeout=loader_timeout(workers),
    )
    parts: dict[str, list[np.ndarray]] = {}
    for batch in tqdm(loader, desc=f"embeddings ({Path(checkpoint).parent.name})"):
        with torch.autocast(device.type, enabled=device.type == "cuda"):
            embeddings = model.embed({key: value.to(device) for key, value in batch.items()})
        for output, values in embeddings.items():
            parts.setdefault(output, []).append(values.float().cpu().numpy())
    return {output: np.concatenate(values) for output, values in parts.items()}


def cv_scores(embeddings: dict[str, np.ndarray], labels: np.ndarray, k: int) -> tuple[dict, dict[str, np.ndarray]]:
    """CV F1 of each output at its best threshold and of their union (lib.thresholds.search: the outputs it uses), with
    the thresholds, and each output's F1 against threshold (lib.thresholds.GRID)."""
    rows = len(labels)
    neighbours = {output: knn.neighbors(values, k=min(k, rows)) for output, values in embeddings.items()}
    c = matching.candidates(neighbours, {})
    curves = {output: thresholds.f1_curve(c, output, labels) for output in embeddings}
    alone = {output: float(thresholds.GRID[np.argmax(curve)]) for output, curve in curves.items()}
    start = {"components": {output: {"threshold": threshold} for output, threshold in alone.items()}}
    union, union_f1 = thresholds.search(c, start, labels)
    scores = {
        "f1": {**{output: float(curve.max()) for output, curve in curves.items()}, "union": float(union_f1)},
        "thresholds": {
            **alone,
            "union": {output: rule["threshold"] for output, rule in union["components"].items()},
        },
    }
    return scores, curves
