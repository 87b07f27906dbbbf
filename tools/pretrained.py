"""make pretrained MODEL=...: a pretrained image backbone or text model as a weights dataset for offline kernels.

Usage: python -m tools.pretrained MODEL [--datasets data/datasets] [--meta datasets-meta]

MODEL is `timm:<name>.<pretrained tag>` (e.g. timm:efficientnet_b3.ra2_in1k, timm:eca_nfnet_l1.ra2_in1k) or
`hf:<model id>` (e.g. hf:bert-base-multilingual-uncased, hf:xlm-roberta-base). It is fetched here, where there is
internet, through timm / huggingface_hub (HF_ENDPOINT names another hub), and written as
- DATASETS/<slug>/: for timm the backbone's state dict as `<architecture>.safetensors` (what `model.image.weights`
  loads, lib/models/image.py); for transformers the model folder (config, safetensors, tokenizer) that
  `model.text.model_dir` names;
- META/<slug>/dataset-metadata.json, for `make upload-weights DATASET=<slug>`;
and the lines an experiment and kernels/shopee-train/kernel.yaml need are printed.
"""

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KAGGLE_LICENSES = {"apache-2.0", "mit", "cc-by-4.0", "cc0-1.0"}  # the ones Kaggle names as the hubs do; else "other"


def slug_of(name: str) -> str:
    """A Kaggle dataset slug (6-50 characters) for a model name."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:50].strip("-")
    return slug if len(slug) >= 6 else f"{slug}-weights"


def metadata(slug: str, title: str, source: str, license_name: str | None) -> dict:
    """The dataset-metadata.json of a weights dataset (the owner is filled in at upload)."""
    known = (license_name or "").lower() in KAGGLE_LICENSES
    return {
        "title": title[:50] if len(title) >= 6 else f"{title} weights",
        "id": f"set-KAGGLE_USERNAME/{slug}",
        "subtitle": f"{source} for offline Kaggle kernels"[:80],
        "description": f"{source}, saved for kernels without internet by `make pretrained` of this project. License: "
        f"{license_name or 'as the original model'}.",
        "licenses": [{"name": license_name.lower() if known else "other"}],
        "keywords": ["computer vision" if source.startswith("timm") else "nlp"],
    }


def timm_weights(name: str, folder: Path) -> tuple[dict, list[str]]:
    """A timm backbone's pretrained state dict as <architecture>.safetensors; its metadata and settings lines."""
    import timm
    from safetensors.torch import save_file

    model = timm.create_model(name, pretrained=True)
    architecture = model.pretrained_cfg["architecture"]
    folder.mkdir(parents=True, exist_ok=True)
    save_file(
        {key: value.contiguous() for key, value in model.state_dict().items()}, folder / f"{architecture}.safetensors"
    )
    slug = folder.name
    lines = [f"model.image.backbone: {architecture}", f"model.image.weights: {slug}/{architecture}.safetensors"]
    return metadata(slug, name, f"timm {name}", model.pretrained_cfg.get("license")), lines


def transformers_folder(name: str, folder: Path) -> tuple[dict, list[str]]:
    """A transformers model and its tokenizer saved as a folder; its metadata and settings lines."""
    from transformers import AutoModel, AutoTokenizer

    AutoTokenizer.from_pretrained(name).save_pretrained(folder)
    AutoModel.from_pretrained(name).save_pretrained(folder)
    return metadata(folder.name, name.split("/")[-1], f"huggingface {name}", None), [
        f"model.text.model_dir: {folder.name}"
    ]


def pretrained(model: str, datasets: Path, meta: Path) -> str:
    """Fetch MODEL and write its dataset and metadata; the slug."""
    kind, _, name = model.partition(":")
    if kind not in ("timm", "hf") or not name:
        raise ValueError(
            f"MODEL={model!r}: give timm:<name>.<tag> (e.g. timm:efficientnet_b3.ra2_in1k) or hf:<model id>"
        )
    slug = slug_of(name.split("/")[-1])  # a hub id without its owner
    fetch = timm_weights if kind == "timm" else transformers_folder
    described, lines = fetch(name, datasets / slug)
    (meta / slug).mkdir(parents=True, exist_ok=True)
    (meta / slug / "dataset-metadata.json").write_text(json.dumps(described, indent=2) + "\n")
    print(f"{datasets / slug}: {model}; {meta / slug / 'dataset-metadata.json'}")
    print("in the experiment (kernels/shopee-train/experiments/<name>.yaml):")
    print("\n".join(f"  {line}" for line in lines))
    print(f"in kernels/shopee-train/kernel.yaml, under dataset_sources:\n  - {slug}")
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
