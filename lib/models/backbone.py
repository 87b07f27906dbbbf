"""A frozen pretrained timm backbone as an image encoder of postings: its pooled features, L2-normalised.

The backbone is built by its timm name (with its pretrained tag, e.g. `efficientnet_b3.ra2_in1k`, whose pretrained
config gives the pixel mean and std), without its classifier but with timm's own global pool and head norm, and its
weights are loaded from a local state dict file (what `make pretrained MODEL=timm:...` writes). Images are read by
lib's loader (grey placeholders for unreadable ones), resized and centre-cropped to `image_size`
(lib.data.augment.eval_transform) and normalised with the backbone's pretrained mean and std.
"""

from pathlib import Path

import numpy as np
import timm
import torch
from torch import Tensor, nn

from lib.data.augment import eval_transform
from lib.data.dataset import Postings
from lib.devices import default_device
from lib.models.embed import embed_postings
from lib.models.image import load_backbone_weights


class PooledBackbone(nn.Module):
    """A timm backbone's pooled features as output "image" (no text branch), for lib.models.embed."""

    text = None

    def __init__(self, name: str, weights: Path):
        super().__init__()
        if not timm.is_model(name):
            raise ValueError(f"backbone: {name!r} is not a timm model; see timm.list_models()")
        self.backbone = timm.create_model(name, pretrained=False, num_classes=0)
        load_backbone_weights(self.backbone, str(weights))

    def embed(self, batch: dict) -> dict[str, Tensor]:
        """Images (B, 3, H, W), normalised as the backbone expects, to their L2-normalised float32 features."""
        return {"image": nn.functional.normalize(self.backbone(batch["image"]).float(), dim=1)}


def image_embeddings(
    frame,
    image_dir: Path,
    weights: Path,
    name: str,
    image_size: int,
    *,
    batch_size: int = 64,
    workers: int = 2,
    device: torch.device | None = None,
) -> dict[str, np.ndarray]:
    """{"image": rows x features} of the frame's images by the backbone `name` with the state dict `weights`."""
    model = PooledBackbone(name, weights).to(device or default_device()).eval()
    config = model.backbone.pretrained_cfg
    dataset = Postings(frame, image_dir, eval_transform(image_size, tuple(config["mean"]), tuple(config["std"])))
    return embed_postings(model, dataset, image_dir, batch_size, workers, f"image embeddings ({name})")
