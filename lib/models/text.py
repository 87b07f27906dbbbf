"""Text branch: a transformers model from a local folder (never a hub), its hidden layers pooled, a neck."""

from pathlib import Path

from torch import Tensor, nn
from transformers import AutoConfig, AutoModel, AutoTokenizer

from lib.models.neck import Features, Neck
from lib.models.pooling import TextPool, TextPoolKind


class TextEncoder(nn.Module):
    """A transformers `AutoModel` and its tokenizer from one folder; pooled hidden layers, then a neck.

    Args:
        model_dir: a local transformers model folder (config.json, weights, tokenizer files).
        pool: "cls", "mean", "mean_last_n", "cls_last_n" or "cls_weighted" (see lib.models.pooling).
        last_n: the layers that "mean_last_n" and "cls_last_n" use.
        max_length: the most tokens `tokenize` keeps of a text.
        embedding: the projection's width; None: no projection (the pooled width).
        pretrained: load the folder's weights (as float32); False builds the model from its config.json with random
            weights (to load a checkpoint into).
    """

    def __init__(
        self,
        model_dir: str,
        pool: TextPoolKind = "mean",
        last_n: int = 4,
        max_length: int = 64,
        dropout: float = 0.0,
        embedding: int | None = None,
        batchnorm: bool = False,
        pretrained: bool = True,
    ):
        super().__init__()
        folder = Path(model_dir)
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(f"text.model_dir: no config.json in {folder}; attach the transformers model folder")
        if pretrained:
            model = AutoModel.from_pretrained(folder, local_files_only=True)
        else:
            model = AutoModel.from_config(AutoConfig.from_pretrained(folder, local_files_only=True))
        self.model = model.float()  # float32 weights whatever dtype the folder stores; autocast lowers the compute
        self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        self.max_length = max_length
        layers = self.model.config.num_hidden_layers
        if pool in ("mean_last_n", "cls_last_n") and not 1 <= last_n <= layers:
            raise ValueError(f"text.last_n: {last_n} is not between 1 and the {layers} layers of {folder}")
        self.pool = TextPool(pool, last_n, layers)
        self.token_width = self.model.config.hidden_size
        self.neck = Neck(self.token_width * self.pool.width_factor, embedding, dropout, batchnorm)
        self.width = self.neck.width

    def tokenize(self, texts: list[str]) -> dict[str, Tensor]:
        """`input_ids` and `attention_mask` (B, T) of `texts`, padded to the longest, at most max_length tokens."""
        tokens = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        return {"input_ids": tokens["input_ids"], "attention_mask": tokens["attention_mask"]}

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Features:
        """Token ids and their mask (B, T) to the embedding and the last layer's tokens."""
        output = self.model(
            input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=self.pool.needs_layers
        )
        layers = output.hidden_states if self.pool.needs_layers else (output.last_hidden_state,)
        embedding = self.neck(self.pool(layers, attention_mask))
        return Features(embedding, output.last_hidden_state, attention_mask)
