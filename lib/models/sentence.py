"""Sentence embeddings of titles from a local transformers model folder (no hub)."""

from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm
from transformers import AutoModel, AutoTokenizer

from lib.devices import default_device
from lib.models.pooling import masked_mean


@torch.inference_mode()
def embed_texts(
    texts: list[str], model_dir: Path, *, batch_size: int = 64, max_length: int = 64, device: torch.device | None = None
) -> np.ndarray:
    """L2-normalised masked-mean embeddings of `texts`, float32, one row per text."""
    device = device or default_device()
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    model = AutoModel.from_pretrained(model_dir, local_files_only=True).to(device).eval()
    batches = []
    for start in tqdm(range(0, len(texts), batch_size), desc="text embeddings"):
        tokens = tokenizer(
            texts[start : start + batch_size], padding=True, truncation=True, max_length=max_length, return_tensors="pt"
        ).to(device)
        with torch.autocast(device.type, enabled=device.type == "cuda"):
            hidden = model(**tokens).last_hidden_state
        mean = masked_mean(hidden, tokens["attention_mask"])
        batches.append(torch.nn.functional.normalize(mean.float(), dim=1).cpu().numpy())
    width = model.config.hidden_size
    return np.concatenate(batches) if batches else np.zeros((0, width), dtype=np.float32)
