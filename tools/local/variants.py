"""Kernel variants: a kernel's source with its parameters cell set and its settings changed, written to a folder that
build.py builds like any kernel. One way for every variant: a training kernel per experiment (tools.kaggle.kernels), the
optimiser over chosen runs and encoders (tools.local.optimize), the inference kernel attaching what its plan reads
(`python -m tools.local.variants`, which `make run` and `make push-inference` use).

A kernel's parameters are the cell tagged `parameters` after its title (papermill's convention, which Kaggle's
executor and notebook tools know): its defaults in the source, the variant's values in the variant.
"""

import argparse
import json
import pprint
import sys
from pathlib import Path

import yaml

import build

PARAMETERS = '# %% tags=["parameters"]'
INFERENCE = "shopee-inference"
PLAN_SOURCE, PLAN_FILE = "optimize-ensemble", "inference_config.json"  # the kernel whose output the plan is


def with_parameters(source: str, values: dict, origin: str) -> str:
    """A py:percent source with the body of its parameters cell replaced by `name = value` lines of `values`;
    BuildError when it has no such cell."""
    start = source.find(f"{PARAMETERS}\n")
    if start < 0:
        raise build.BuildError(f"{origin}: no cell marked `{PARAMETERS}` after the title, for the variant's values")
    body = start + len(PARAMETERS) + 1
    end = source.find("\n# %%", body)
    end = len(source) if end < 0 else end + 1
    lines = "".join(
        f"{name} = {pprint.pformat(value, width=110, sort_dicts=False)}\n" for name, value in values.items()
    )
    return source[:body] + lines + "\n" + source[end:]


def write_variant(kernel_dir: Path, target: Path, settings: dict, values: dict) -> Path:
    """Write target/ (kernel.yaml of `settings`, notebook.py of kernel_dir's source with its parameters set to
    `values`) and return it."""
    source_path = kernel_dir / build.SOURCE_FILE
    source = with_parameters(source_path.read_text(), values, str(source_path)) if values else source_path.read_text()
    target.mkdir(parents=True, exist_ok=True)
    (target / build.SETTINGS_FILE).write_text(yaml.safe_dump(settings, sort_keys=False))
    (target / build.SOURCE_FILE).write_text(source)
    return target


def plan_sources(plan: dict) -> tuple[list[str], list[str]]:
    """The kernel sources (training runs) and dataset sources (pretrained encoders) a plan's models read."""
    models = plan["models"].values()
    runs = sorted({model["source"] for model in models if model["kind"] == "checkpoint"})
    datasets = sorted({model["source"].split("/")[0] for model in models if model["kind"] != "checkpoint"})
    return runs, datasets


def inference_variant(kernel_dir: Path, plan: dict, plan_source: str, target: Path) -> Path:
    """The inference kernel attaching what `plan` reads: the plan's own source (`plan_source`, the optimiser's output)
    and its models' (training runs as kernel sources, encoders as datasets, beside the kernel's own datasets)."""
    settings = build.read_settings(kernel_dir)
    runs, datasets = plan_sources(plan)
    own = settings.get("dataset_sources", [])
    settings["kernel_sources"] = [plan_source, *runs]
    settings["dataset_sources"] = own + [slug for slug in datasets if slug not in own]
    return write_variant(kernel_dir, target, settings, {})


def plan_kernel(kernels: Path, runs: Path, build_root: Path) -> Path:
    """The inference kernel's folder to build: a variant attaching what the optimiser's local plan reads
    (runs/optimize-ensemble/inference_config.json), or kernels/shopee-inference as it is where there is none."""
    kernel_dir, path = kernels / INFERENCE, runs / PLAN_SOURCE / PLAN_FILE
    if not path.is_file():
        return kernel_dir
    plan = json.loads(path.read_text())
    target = inference_variant(kernel_dir, plan, PLAN_SOURCE, build_root / "variants" / INFERENCE)
    settings = build.read_settings(target)
    print(
        f"{INFERENCE} attaches what {path} reads: kernel sources {settings['kernel_sources']}, datasets "
        f"{settings['dataset_sources']}"
    )
    return target


def main() -> int:
    parser = argparse.ArgumentParser(description="Build the inference kernel attaching what the local plan reads.")
    parser.add_argument("--kernels", type=Path, default=build.ROOT / "kernels", help="folder of kernel sources")
    parser.add_argument("--runs", type=Path, default=build.ROOT / "runs", help="folder of run outputs (the plan)")
    parser.add_argument("--build", type=Path, default=build.ROOT / "build", help="folder of built kernels")
    args = parser.parse_args()
    try:
        build.build_kernel(plan_kernel(args.kernels, args.runs, args.build), args.build)
    except build.BuildError as error:
        print(f"build failed: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
