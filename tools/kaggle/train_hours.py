"""Projected GPU hours of a training experiment on Kaggle's 2 x T4, printed before a push-train.

Usage: python -m tools.kaggle.train_hours EXPERIMENT ...   (make train-hours EXP=...)

Each epoch trains on the training postings and embeds the validation postings, on KAGGLE_TRAIN_ROWS rows split by
`folds`, over 2 GPUs. Image backbones are timed by timm's training benchmark scaled to a T4 by ResNet-50; text models
by their floating-point operations (6 x N x tokens to train, 2 x N x tokens to embed; TEXT_SHAPES where a model's
config.json is not at hand). The model, its sources and what it leaves out: docs/training.md, "`make train-hours`:
projected GPU time".
"""

import argparse
import json
import sys
from pathlib import Path

from lib.inference.time_budget import KAGGLE_TRAIN_ROWS, T4_TFLOPS, cited_rate, nearest_rate
from lib.training import experiment

ROOT = Path(__file__).resolve().parents[2]
LOCAL_DATASETS = ROOT / "data" / "datasets"
EXPERIMENTS = ROOT / "kernels" / "shopee-train" / "experiments"
KAGGLE_GPUS = 2  # NvidiaTeslaT4 is 2 x T4
SESSION_HOURS = 12  # a Kaggle notebook session's limit
WEEKLY_GPU_HOURS = 30
T4_RESNET50_TRAIN = 1165 * 1200 / 2984
T4_TRAIN_PER_RTX3090 = T4_RESNET50_TRAIN / 826.06  # ResNet-50 at 224 px in timm's training table
T4_EFFECTIVE_TFLOPS = T4_TFLOPS["float32"] * 1165 / 428  # ResNet-50's mixed precision: 1165 images/s x 8.2 GFLOP
RTX3090_TRAIN_IMAGES_PER_SECOND = {  # (backbone, image size): images/s, timm's training table named above
    ("resnet18", 224): 2764.22,
    ("resnet34", 224): 1622.41,
    ("resnet50", 224): 826.06,
    ("efficientnet_b0", 224): 1459.11,
    ("efficientnet_b3", 288): 456.81,
    ("tf_efficientnet_b3", 300): 370.15,
    ("efficientnet_b4", 320): 293.1,
    ("efficientnet_b5", 456): 93.71,
    ("tf_efficientnetv2_s", 300): 389.1,
    ("eca_nfnet_l0", 224): 723.69,
    ("eca_nfnet_l1", 256): 341.07,
    ("eca_nfnet_l2", 320): 142.2,
    ("nfnet_l0", 224): 719.96,
    ("convnext_tiny", 224): 813.16,
    ("convnext_small", 224): 489.81,
    ("swin_tiny_patch4_window7_224", 224): 646.76,
    ("swin_base_patch4_window7_224", 224): 279.66,
    ("vit_base_patch16_224", 224): 390.86,
}
TEXT_SHAPES = {  # model folder name: (layers, hidden size, intermediate size)
    "all-minilm-l6-v2": (6, 384, 1536),
    "bert-base-multilingual-uncased": (12, 768, 3072),
    "bert-base-multilingual-cased": (12, 768, 3072),
    "bert-base-indonesian-522m": (12, 768, 3072),
    "indobert-base-p1": (12, 768, 3072),
    "xlm-roberta-base": (12, 768, 3072),
    "xlm-roberta-large": (24, 1024, 4096),
    "paraphrase-multilingual-mpnet-base-v2": (12, 768, 3072),
}


def text_parameters(model_dir: str, local_datasets: Path) -> int | None:
    """Parameters of the text model's transformer layers (4 h^2 attention + 2 h i feed-forward each), or None."""
    path = local_datasets / model_dir / "config.json"
    if path.is_file():
        config = json.loads(path.read_text())
        shape = (config.get("num_hidden_layers"), config.get("hidden_size"), config.get("intermediate_size"))
    else:
        shape = TEXT_SHAPES.get(Path(model_dir).name.lower(), (None,))
    if None in shape:
        return None
    layers, hidden, intermediate = shape
    return layers * (4 * hidden**2 + 2 * hidden * intermediate)


def epoch_seconds(config: dict, size: int, local_datasets: Path) -> tuple[dict[str, float], list[str]]:
    """Seconds of one epoch at `size` px on the machine by part ("<part> train" / "<part> validate"), and the parts
    without a rate."""
    folds = config["folds"]
    held = KAGGLE_TRAIN_ROWS / folds["count"] if folds["fold"] is not None else 0
    fitted = KAGGLE_TRAIN_ROWS - held
    seconds, unknown = {}, []
    image = config["model"].get("image")
    if image:
        train_rate = nearest_rate(RTX3090_TRAIN_IMAGES_PER_SECOND, image["backbone"], size)
        if train_rate is None:
            unknown.append(f"{image['backbone']} (no cited rate)")
        else:
            train_rate *= T4_TRAIN_PER_RTX3090
            forward_rate = cited_rate(f"{image['backbone']}@{size}") or 3 * train_rate
            seconds[f"{image['backbone']} train"] = fitted / train_rate
            seconds[f"{image['backbone']} validate"] = held / forward_rate
    text = config["model"].get("text")
    if text:
        parameters = text_parameters(text["model_dir"], local_datasets)
        if parameters is None:
            unknown.append(f"{text['model_dir']} (no config.json in {local_datasets / text['model_dir']})")
        else:
            flops = parameters * text["max_length"] / (T4_EFFECTIVE_TFLOPS * 1e12)
            seconds[f"{text['model_dir']} train"] = 6 * flops * fitted
            seconds[f"{text['model_dir']} validate"] = 2 * flops * held
    return {part: s / KAGGLE_GPUS for part, s in seconds.items()}, unknown


def report(config: dict, source: str, local_datasets: Path = LOCAL_DATASETS) -> str:
    """The experiment's projected hours per epoch and in all, in words (`config`: lib.training.experiment.resolve)."""
    epochs = config["train"]["epochs"]
    heading = f"{source}: projected GPU time on Kaggle's {KAGGLE_GPUS} x T4, {KAGGLE_TRAIN_ROWS:,} training postings"
    lines, total = [heading + " (the loader's decoding on 4 CPUs not counted)"], 0.0
    for epoch in range(epochs):
        size = experiment.size_at(config, epoch)
        seconds, unknown = epoch_seconds(config, size, local_datasets)
        total += sum(seconds.values())
        parts = ", ".join(f"{part} {s / 60:.1f}" for part, s in seconds.items())
        at_size = f" at {size} px" if config["model"].get("image") else ""
        lines.append(f"  epoch {epoch + 1}{at_size}: {sum(seconds.values()) / 60:.1f} min ({parts})")
        if unknown:
            lines.append(f"    not projected: {', '.join(unknown)}")
    hours = total / 3600
    lines.append(f"  all {epochs} epochs: {hours:.2f} h of the {WEEKLY_GPU_HOURS} GPU hours a week")
    if hours > SESSION_HOURS:
        lines.append(
            f"  over a session's {SESSION_HOURS} hours: Kaggle stops it; a later push with `resume: <this kernel's "
            "slug>` (the kernel attached) goes on from its last.pt"
        )
    return "\n".join(lines)


def file_report(path: Path) -> str:
    """The report of the experiment file at `path`."""
    return report(experiment.load_experiment(path), str(path))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiments", nargs="+", help="names in kernels/shopee-train/experiments/ or .yaml files")
    for name in parser.parse_args().experiments:
        path = Path(name) if name.endswith(".yaml") else EXPERIMENTS / f"{name}.yaml"
        try:
            print(file_report(path))
        except (FileNotFoundError, ValueError) as error:
            print(error, file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
