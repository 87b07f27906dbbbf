"""Sentence embeddings of titles from a local transformers model folder (no hub), by the convention of its family.

A family's convention is its pooling and its prefix (the model cards): "mean", the masked mean of the last hidden state
(sentence-transformers' MiniLM and paraphrase-multilingual models; multilingual-e5, whose texts start with "query: ");
"cls", the first token's last hidden state; "pooler", the model's pooler_output (LaBSE). Embeddings are L2-normalised.
"""

from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm
from transformers import AutoModel, AutoTokenizer

from lib.devices import default_device
from lib.models.pooling import masked_mean

POOLINGS = ("mean", "cls", "pooler")


def pooled(output, mask: torch.Tensor, pooling: str, model_dir: Path) -> torch.Tensor:
    """One vector per text of a transformers model's output, by `pooling` (POOLINGS)."""
    if pooling == "mean":
        return masked_mean(output.last_hidden_state, mask)
    if pooling == "cls":
        return output.last_hidden_state[:, 0]
    if getattr(output, "pooler_output", None) is None:
        raise ValueError(f"{model_dir}: the model has no pooler (no pooler_output); use pooling 'mean' or 'cls'")
    return output.pooler_output


@torch.inference_mode()
def embed_texts(
    texts: list[str],
    model_dir: Path,
    *,
    pooling: str = "mean",
    prefix: str = "",
    batch_size: int = 64,
    max_length: int = 64,
    device: torch.device | None = None,
) -> np.ndarray:
    """L2-normalised float32 embeddings of `prefix` + each text, pooled by `pooling` (POOLINGS): a row per text."""
    if pooling not in POOLINGS:
        raise ValueError(f"pooling: {pooling!r} is not one of {list(POOLINGS)}")
    device = device or default_device()
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    model = AutoModel.from_pretrained(model_dir, local_files_only=True).to(device).eval()
    batches = []
    for start in tqdm(range(0, len(texts), batch_size), desc="text embeddings"):
        batch = [prefix + text for text in texts[start : start + batch_size]]
        tokens = tokenizer(batch, padding=True, truncation=True, max_length=max_length, return_tensors="pt").to(device)
        with torch.autocast(device.type, enabled=device.type == "cuda"):
            vectors = pooled(model(**tokens), tokens["attention_mask"], pooling, model_dir)
        batches.append(torch.nn.functional.normalize(vectors.float(), dim=1).cpu().numpy())
    width = model.config.hidden_size
    return np.concatenate(batches) if batches else np.zeros((0, width), dtype=np.float32)
