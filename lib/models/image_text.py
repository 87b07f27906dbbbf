"""CLIP and SigLIP image-text models from a local transformers folder: each posting's image and title embeddings.

The folder holds a CLIPModel or SiglipModel and its processor, as save_pretrained writes them (`make pretrained
MODEL=hf:<id>`). Outputs, each L2-normalised:
- "image": get_image_features of the posting's image, read by lib's loader (grey placeholders for unreadable ones) and
  preprocessed by lib.data.augment.ProcessorTransform with the image processor's own numbers (size, centre crop,
  resampling, mean, std; from preprocessor_config.json, or processor_config.json where transformers 5 saves them);
- "text": get_text_features of the normalised title, tokenized by the folder's tokenizer: CLIP's padded to the
  longest title of a batch (truncated at its 77 positions), SigLIP's to SIGLIP_TEXT_LENGTH tokens (its model card).
"""

from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from transformers import AutoConfig, AutoImageProcessor, AutoModel, AutoTokenizer

from lib.data.augment import RESAMPLES, ProcessorTransform
from lib.data.dataset import Postings
from lib.devices import default_device
from lib.models.embed import embed_postings

FAMILIES = ("clip", "siglip")  # transformers' model_type of each
SIGLIP_TEXT_LENGTH = 64
TEXT_INPUTS = ("input_ids", "attention_mask")


def family_of(folder: Path) -> str:
    """The family (FAMILIES) of a model folder, by its config.json's model_type."""
    family = AutoConfig.from_pretrained(folder, local_files_only=True).model_type
    if family not in FAMILIES:
        raise ValueError(
            f"{folder}: config.json's model_type is {family!r}; a clip model of the plan is a folder of a CLIP or "
            f"SigLIP model ({list(FAMILIES)}) with its processor"
        )
    return family


class Titles:
    """Titles tokenized as a family's text tower takes them (module docstring)."""

    def __init__(self, folder: Path, family: str, positions: int):
        self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        if family == "siglip":
            self.options = {"padding": "max_length", "max_length": SIGLIP_TEXT_LENGTH}
        else:
            self.options = {"padding": True, "max_length": positions}

    def tokenize(self, titles: list[str]) -> dict[str, Tensor]:
        """The token ids (and attention mask, where the tokenizer gives one) of the titles."""
        tokens = self.tokenizer(titles, truncation=True, return_tensors="pt", **self.options)
        return {key: tokens[key] for key in TEXT_INPUTS if key in tokens}


class ImageText(nn.Module):
    """A CLIP or SigLIP model's image and text features as outputs "image" and "text", for lib.models.embed."""

    def __init__(self, folder: Path):
        super().__init__()
        family = family_of(folder)
        self.model = AutoModel.from_pretrained(folder, local_files_only=True)
        self.text = Titles(folder, family, self.model.config.text_config.max_position_embeddings)

    def embed(self, batch: dict) -> dict[str, Tensor]:
        """A batch's images (B, 3, H, W, preprocessed) and tokenized titles to their L2-normalised float32 features."""
        image = self.model.get_image_features(pixel_values=batch["image"]).pooler_output
        text = self.model.get_text_features(**{key: batch[key] for key in TEXT_INPUTS if key in batch}).pooler_output
        return {name: nn.functional.normalize(x.float(), dim=1) for name, x in (("image", image), ("text", text))}


def image_transform(folder: Path) -> ProcessorTransform:
    """The folder's image processor as a ProcessorTransform; ValueError naming the folder and the setting when it is
    not one that gives every image one shape by resizing, centre cropping, rescaling and normalising."""
    processor = AutoImageProcessor.from_pretrained(folder, local_files_only=True)
    for step in ("do_resize", "do_rescale", "do_normalize"):
        if not getattr(processor, step):
            raise ValueError(f"{folder}: the image processor's {step} is off; a clip model's processor must set it")
    size = dict(processor.size)
    crop = dict(processor.crop_size) if getattr(processor, "do_center_crop", None) else None
    if set(size) == {"height", "width"}:
        resize, bound = (size["height"], size["width"]), (size["height"], size["width"])
    elif set(size) == {"shortest_edge"} and crop is not None:
        resize, bound = size["shortest_edge"], (size["shortest_edge"], size["shortest_edge"])
    else:
        raise ValueError(
            f"{folder}: the image processor's size {size} (centre crop {crop}) gives images of different shapes; "
            "a clip model's processor resizes to a height and width, or its shortest edge and then crops"
        )
    if crop is not None and (crop["height"] > bound[0] or crop["width"] > bound[1]):
        raise ValueError(f"{folder}: the image processor's crop_size {crop} exceeds its size {size}")
    if int(processor.resample) not in RESAMPLES:
        known = sorted(RESAMPLES)
        raise ValueError(f"{folder}: the image processor's resample {processor.resample!r} is not one of {known}")
    return ProcessorTransform(
        resize,
        None if crop is None else (crop["height"], crop["width"]),
        int(processor.resample),
        tuple(processor.image_mean),
        tuple(processor.image_std),
        processor.rescale_factor,
    )


def image_text_embeddings(
    frame, image_dir: Path, folder: Path, *, batch_size: int = 64, workers: int = 2, device: torch.device | None = None
) -> dict[str, np.ndarray]:
    """{"image": rows x dim, "text": rows x dim} of the frame's postings by the CLIP or SigLIP model in `folder`."""
    model = ImageText(folder).to(device or default_device()).eval()
    dataset = Postings(frame, image_dir, image_transform(folder))
    return embed_postings(model, dataset, image_dir, batch_size, workers, f"image and text ({Path(folder).name})")
