"""The embedding model: image and/or text branches, a fusion for joint models, margin heads and their losses."""

import torch.nn.functional as F
from torch import Tensor, nn

from lib import schema
from lib.models.config import FUSIONS, arguments, validate_config
from lib.models.fusion import ConcatFusion, TransformerFusion
from lib.models.heads import HEADS, margin_at
from lib.models.image import ImageEncoder
from lib.models.losses import LOSSES, batch_hard_triplet_loss, info_nce_loss
from lib.models.registry import register_model
from lib.models.text import TextEncoder

BATCH_KEYS = {"image": ["image"], "text": ["input_ids", "attention_mask"]}


class ProductModel(nn.Module):
    """Embeddings of postings from their image and/or title, and their training loss (Henkel's batch-dict style).

    Batch keys: "image" (B, 3, H, W) float, "input_ids" and "attention_mask" (B, T) (from `model.text.tokenize`),
    "label" (B,) int64 for the loss. Outputs: "concat" (joint models), "image", "text", each of its branch's width.
    `config` is the complete, validated config (lib.models.config) that a checkpoint stores.
    """

    def __init__(self, config: dict, branches: tuple[str, ...], load_weights: bool = True):
        super().__init__()
        self.config = config = validate_config(config, branches)
        self.image = ImageEncoder(**config["image"], pretrained=load_weights) if "image" in config else None
        self.text = TextEncoder(**config["text"], pretrained=load_weights) if "text" in config else None
        widths = {branch: encoder.width for branch, encoder in [("image", self.image), ("text", self.text)] if encoder}
        self.fusion = None
        if "fusion" in config:
            kind, fusion = config["fusion"]["kind"], arguments(FUSIONS[config["fusion"]["kind"]], config["fusion"])
            if kind == "concat":
                self.fusion = ConcatFusion(sum(widths.values()), **fusion)
            else:
                self.fusion = TransformerFusion((self.image.token_width, self.text.token_width), **fusion)
            widths["concat"] = config["fusion"]["linear_out"]
        self.heads = nn.ModuleDict()
        for output, spec in config["heads"].items():
            head = HEADS[spec["kind"]]
            self.heads[output] = head(widths[output], config["num_classes"], **arguments(head, spec))
        if "contrastive" in config and widths["image"] != widths["text"]:
            raise schema.error(
                "model config",
                ("contrastive",),
                f"the image and text embeddings are {widths['image']} and {widths['text']} wide; give image.embedding "
                "and text.embedding one width",
            )
        self.loss_weights = {output: spec["weight"] for output, spec in config["heads"].items()}
        self.loss_weights |= {term: config[term]["weight"] for term in ("triplet", "contrastive") if term in config}

    def encode(self, batch: dict) -> dict[str, Tensor]:
        """The embeddings of each output, as trained (not normalised)."""
        features = {}
        for branch, keys in BATCH_KEYS.items():
            encoder = getattr(self, branch)
            if encoder is not None:
                missing = [key for key in keys if key not in batch]
                if missing:
                    raise KeyError(f"the batch has no {missing}, which the {branch} branch needs")
                features[branch] = encoder(*(batch[key] for key in keys))
        embeddings = {branch: found.embedding for branch, found in features.items()}
        if self.fusion is not None:
            embeddings = {"concat": self.fusion(features["image"], features["text"])} | embeddings
        return embeddings

    def forward(self, batch: dict) -> dict:
        """{"embeddings": `encode`}, and with a "label" in the batch and losses in the config, "losses" (each term:
        one per head, named by its output, "triplet", "contrastive") and "loss", their weighted sum."""
        embeddings = self.encode(batch)
        if "label" not in batch or not self.loss_weights:
            return {"embeddings": embeddings}
        losses = self.losses(embeddings, batch["label"])
        loss = sum(self.loss_weights[term] * value for term, value in losses.items())
        return {"embeddings": embeddings, "losses": losses, "loss": loss}

    def losses(self, embeddings: dict[str, Tensor], labels: Tensor) -> dict[str, Tensor]:
        """Each loss term of the config, unweighted."""
        terms = {}
        for output, head in self.heads.items():
            spec = self.config["heads"][output]
            loss = LOSSES[spec["loss"]]
            terms[output] = loss(head(embeddings[output], labels), labels, **arguments(loss, spec))
        if "triplet" in self.config:
            triplet = self.config["triplet"]
            terms["triplet"] = batch_hard_triplet_loss(embeddings[triplet["output"]], labels, triplet["margin"])
        if "contrastive" in self.config:
            temperature = self.config["contrastive"]["temperature"]
            terms["contrastive"] = info_nce_loss(embeddings["image"], embeddings["text"], labels, temperature)
        return terms

    def embed(self, batch: dict) -> dict[str, Tensor]:
        """The embeddings of each output, L2-normalised, float32: what inference compares."""
        return {output: F.normalize(embedding.float(), dim=1) for output, embedding in self.encode(batch).items()}

    def schedule_margins(self, epoch: float, epochs: int) -> None:
        """Set the margin of each head with a margin_end to its value at `epoch` of a linear ramp (heads.margin_at)."""
        for output, head in self.heads.items():
            spec = self.config["heads"][output]
            if spec["margin_end"] is not None:
                head.margin = margin_at(epoch, epochs, spec["margin"], spec["margin_end"])


@register_model("image")
def image_model(config: dict, load_weights: bool = True) -> ProductModel:
    """An image branch alone: output "image"."""
    return ProductModel(config, ("image",), load_weights)


@register_model("text")
def text_model(config: dict, load_weights: bool = True) -> ProductModel:
    """A text branch alone: output "text"."""
    return ProductModel(config, ("text",), load_weights)


@register_model("joint")
def joint_model(config: dict, load_weights: bool = True) -> ProductModel:
    """Image and text branches and their fusion: outputs "concat", "image", "text"."""
    return ProductModel(config, ("image", "text"), load_weights)
