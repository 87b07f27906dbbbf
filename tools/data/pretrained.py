"""make pretrained MODEL=...: a pretrained image backbone, text model or image-text model as a weights dataset for
offline kernels.

Usage: python -m tools.data.pretrained MODEL [--datasets data/datasets] [--meta datasets-meta]

MODEL is `timm:<name>.<pretrained tag>` (e.g. timm:efficientnet_b3.ra2_in1k) or `hf:<model id>` (e.g.
hf:intfloat/multilingual-e5-small, hf:openai/clip-vit-base-patch32). It is fetched here through timm or
huggingface_hub (HF_ENDPOINT names another hub) into DATASETS/<slug>/, with META/<slug>/dataset-metadata.json and
encoder.json; the lines for an experiment, kernel.yaml and a plan are printed. What is saved for each kind of model:
docs/training.md, "Pretrained weights".
"""

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from tools.local.optimize import ENCODER_FILE

ROOT = Path(__file__).resolve().parents[2]
KAGGLE_LICENSES = {"apache-2.0", "mit", "cc-by-4.0", "cc0-1.0"}  # the ones Kaggle names as the hubs do; else "other"
E5 = re.compile(r"(^|[-_/])e5([-_]|$)")  # intfloat/multilingual-e5-small, intfloat/e5-base-v2
CONVENTIONS = {  # a sentence model's family: what it does (by its model card), its plan keys
    "e5": ('"query: " before every title, mean pooling (multilingual-e5)', {"pooling": "mean", "prefix": "query: "}),
    "LaBSE": ("the pooler's output (LaBSE)", {"pooling": "pooler", "prefix": ""}),
    "other": (
        "mean pooling (as sentence-transformers' MiniLM, paraphrase-multilingual)",
        {"pooling": "mean", "prefix": ""},
    ),
}


@dataclass
class Fetched:
    """What a fetch wrote: the dataset's metadata, what the model is (one line), the experiment's lines (none where it
    is no training branch) and the plan's model entry."""

    metadata: dict
    says: str
    experiment: list[str]
    plan: dict


def slug_of(name: str) -> str:
    """A Kaggle dataset slug (6-50 characters) for a model name."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:50].strip("-")
    return slug if len(slug) >= 6 else f"{slug}-weights"


def metadata(slug: str, title: str, source: str, license_name: str | None, keywords: list[str]) -> dict:
    """The dataset-metadata.json of a weights dataset (the owner is filled in at upload)."""
    known = (license_name or "").lower() in KAGGLE_LICENSES
    return {
        "title": title[:50] if len(title) >= 6 else f"{title} weights",
        "id": f"set-KAGGLE_USERNAME/{slug}",
        "subtitle": f"{source} for offline Kaggle kernels"[:80],
        "description": f"{source}, saved for kernels without internet by `make pretrained` of this project. License: "
        f"{license_name or 'as the original model'}.",
        "licenses": [{"name": license_name.lower() if known else "other"}],
        "keywords": keywords,
    }


def timm_weights(name: str, folder: Path) -> Fetched:
    """A timm backbone's pretrained state dict as <architecture>.safetensors."""
    import timm
    from safetensors.torch import save_file

    model = timm.create_model(name, pretrained=True)
    config = model.pretrained_cfg
    architecture, size = config["architecture"], config["input_size"][-1]
    folder.mkdir(parents=True, exist_ok=True)
    save_file(
        {key: value.contiguous() for key, value in model.state_dict().items()}, folder / f"{architecture}.safetensors"
    )
    slug = folder.name
    entry = {"kind": "image", "source": slug, "file": f"{architecture}.safetensors", "backbone": name}
    return Fetched(
        metadata(slug, name, f"timm {name}", config.get("license"), ["computer vision"]),
        f"timm backbone {name}: pooled features at {size} px (its pretrained input size), mean {config['mean']}, "
        f"std {config['std']}",
        [f"model.image.backbone: {architecture}", f"model.image.weights: {slug}/{architecture}.safetensors"],
        entry | {"image_size": size},
    )


def sentence_family(name: str) -> str:
    """A sentence model's family (a key of CONVENTIONS), told by its hub id."""
    lowered = name.lower()
    return "e5" if E5.search(lowered) else "LaBSE" if "labse" in lowered else "other"


def text_folder(name: str, folder: Path) -> Fetched:
    """A transformers model and its tokenizer saved as a folder."""
    from transformers import AutoModel, AutoTokenizer

    AutoTokenizer.from_pretrained(name).save_pretrained(folder)
    AutoModel.from_pretrained(name).save_pretrained(folder)
    family = sentence_family(name)
    does, convention = CONVENTIONS[family]
    return Fetched(
        metadata(folder.name, name.split("/")[-1], f"huggingface {name}", None, ["nlp"]),
        f"sentence model of family {family}: {does}",
        [f"model.text.model_dir: {folder.name}"],
        {"kind": "sentence", "source": folder.name} | convention,
    )


def image_text_folder(name: str, folder: Path, family: str) -> Fetched:
    """A CLIP or SigLIP model and its processor (image processor and tokenizer) saved as a folder."""
    from transformers import AutoModel, AutoProcessor

    from lib.models.image_text import SIGLIP_TEXT_LENGTH

    AutoProcessor.from_pretrained(name).save_pretrained(folder)
    AutoModel.from_pretrained(name).save_pretrained(folder)
    padding = f"padded to {SIGLIP_TEXT_LENGTH} tokens" if family == "siglip" else "padded to a batch's longest"
    return Fetched(
        metadata(folder.name, name.split("/")[-1], f"huggingface {name}", None, ["computer vision", "nlp"]),
        f"{family} image-text model: outputs image and text (titles {padding}), and the image-title pair feature",
        [],
        {"kind": "clip", "source": folder.name},
    )


def hf_folder(name: str, folder: Path) -> Fetched:
    """A transformers model as a folder: a CLIP or SigLIP model with its processor, or a text model."""
    from transformers import AutoConfig

    from lib.models.image_text import FAMILIES

    family = AutoConfig.from_pretrained(name).model_type
    return image_text_folder(name, folder, family) if family in FAMILIES else text_folder(name, folder)


def pretrained(model: str, datasets: Path, meta: Path) -> str:
    """Fetch MODEL and write its dataset and metadata; the slug."""
    kind, _, name = model.partition(":")
    if kind not in ("timm", "hf") or not name:
        raise ValueError(
            f"MODEL={model!r}: give timm:<name>.<tag> (e.g. timm:efficientnet_b3.ra2_in1k) or hf:<model id>"
        )
    slug = slug_of(name.split("/")[-1])  # a hub id without its owner
    fetched = (timm_weights if kind == "timm" else hf_folder)(name, datasets / slug)
    (meta / slug).mkdir(parents=True, exist_ok=True)
    (meta / slug / "dataset-metadata.json").write_text(json.dumps(fetched.metadata, indent=2) + "\n")
    (meta / slug / ENCODER_FILE).write_text(json.dumps(fetched.plan) + "\n")
    print(f"{datasets / slug}: {model}; {meta / slug / 'dataset-metadata.json'}")
    print(fetched.says)
    if fetched.experiment:
        print("in the experiment (kernels/shopee-train/experiments/<name>.yaml):")
        print("\n".join(f"  {line}" for line in fetched.experiment))
        print(f"in kernels/shopee-train/kernel.yaml, under dataset_sources:\n  - {slug}")
    print('in a plan (inference_config.json), under "models":')
    print(f"  {json.dumps(slug)}: {json.dumps(fetched.plan)}")
    print(f"in kernels/shopee-inference/kernel.yaml, under dataset_sources:\n  - {slug}")
    print(f"the optimiser embeds it as a frozen encoder (its entry in {meta / slug / ENCODER_FILE}): ENCODERS={slug}")
    print(f"then publish it: make upload-weights DATASET={slug}")
    return slug


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("--datasets", type=Path, default=ROOT / "data" / "datasets")
    parser.add_argument("--meta", type=Path, default=ROOT / "datasets-meta")
    args = parser.parse_args()
    try:
        pretrained(args.model, args.datasets, args.meta)
    except (ValueError, OSError) as error:
        print(f"pretrained: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
