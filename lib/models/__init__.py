"""Embedding models of postings (image, text, joint), built from a config (lib.models.config) by name.

`create_model(config)` builds one (lib.models.registry), `save_checkpoint` / `load_model` store and rebuild it
(lib.models.checkpoint).
"""

from lib.models.checkpoint import load_model, read_checkpoint, save_checkpoint
from lib.models.model import ProductModel
from lib.models.registry import create_model

__all__ = ["ProductModel", "create_model", "load_model", "read_checkpoint", "save_checkpoint"]
