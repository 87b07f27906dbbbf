"""Build the optimize-ensemble kernel for chosen training runs and pretrained encoders (local only; `make optimize`).

Usage: python -m tools.local.optimize [--build DIR] [--encoders SLUG ...] [RUN ...]   (from the repository root)

Writes DIR/variants/optimize-ensemble/ (DIR: build/ by default; tools/local/variants.py), the kernel's source and
settings with the runs as kernel sources and the encoders' datasets as dataset sources, and builds it into
DIR/optimize-ensemble/ for `python -m tools.local.run_kernel optimize-ensemble --build DIR`, which reads runs/<RUN>/
and data/datasets/<SLUG>/ and writes runs/optimize-ensemble/. An encoder is a dataset that `make pretrained` wrote;
with encoders the kernel embeds train postings and asks for Kaggle's GPU. The optimiser: docs/optimiser.md.
"""

import argparse
import json
import sys
from pathlib import Path

import build
from tools.local.variants import write_variant

KERNEL = build.ROOT / "kernels" / "optimize-ensemble"
DATASETS_META = build.ROOT / "datasets-meta"
ENCODER_FILE = "encoder.json"  # a pretrained encoder's plan entry (lib/inference/plan.py), written by make pretrained


def encoder_entries(slugs: list[str], meta: Path = DATASETS_META) -> dict[str, dict]:
    """The plan entry of each encoder, by slug (datasets-meta/<slug>/encoder.json); BuildError naming a missing one."""
    entries = {}
    for slug in slugs:
        path = meta / slug / ENCODER_FILE
        if not path.is_file():
            known = sorted(found.parent.name for found in meta.glob(f"*/{ENCODER_FILE}"))
            raise build.BuildError(
                f"{path}: missing; `make pretrained MODEL=...` writes it for the model it fetches (encoders: {known})"
            )
        entries[slug] = json.loads(path.read_text())
    return entries


def variant(
    runs: list[str], out: Path, encoders: list[str] = (), kernel_dir: Path = KERNEL, meta: Path = DATASETS_META
) -> Path:
    """The kernel folder of an optimiser over `runs` (slugs of training kernels) and `encoders` (slugs of pretrained
    encoders' datasets, their entries in `meta`) in `out`: settings and source."""
    if not (runs or encoders) or len(set(runs)) != len(runs) or len(set(encoders)) != len(encoders):
        raise build.BuildError(
            f"RUNS={' '.join(runs)!r} ENCODERS={' '.join(encoders)!r}: name one or more different training runs or "
            "pretrained encoders (slugs)"
        )
    entries = encoder_entries(list(encoders), meta)
    settings = build.read_settings(kernel_dir) | {"kernel_sources": list(runs)}
    datasets = settings.get("dataset_sources", [])
    settings["dataset_sources"] = datasets + [slug for slug in encoders if slug not in datasets]
    if encoders:
        settings["enable_gpu"] = True  # embedding every train posting: Kaggle's T4s, not its CPUs
    return write_variant(kernel_dir, out / kernel_dir.name, settings, {"RUNS": list(runs), "ENCODERS": entries})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="*", help="slugs of training runs (their outputs in runs/<slug>/)")
    parser.add_argument("--encoders", nargs="*", default=[], help="slugs of pretrained encoders (make pretrained)")
    parser.add_argument("--build", type=Path, default=build.ROOT / "build", help="output folder")
    args = parser.parse_args()
    try:
        out_dir = build.build_kernel(variant(args.runs, args.build / "variants", args.encoders), args.build)
    except build.BuildError as error:
        print(f"build failed: {error}", file=sys.stderr)
        return 1
    runs, encoders = ", ".join(args.runs) or "none", ", ".join(args.encoders) or "none"
    print(f"built {out_dir} for the runs {runs} and the encoders {encoders}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
