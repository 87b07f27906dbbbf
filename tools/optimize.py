"""Build the optimize-ensemble kernel for chosen training runs (local only).

Usage: python -m tools.optimize [--build DIR] RUN [RUN ...]   (from the repository root)

Writes DIR/variants/optimize-ensemble/ (DIR: build/ by default): the kernel's source with a first cell `RUNS = [...]`
and its settings with the runs as kernel_sources, and builds it into DIR/optimize-ensemble/, so that
`python tools/run_kernel.py optimize-ensemble --build DIR` runs it on runs/<RUN>/ and writes runs/optimize-ensemble/.
"""

import argparse
import sys
from pathlib import Path

import yaml

import build

KERNEL = build.ROOT / "kernels" / "optimize-ensemble"


def variant(runs: list[str], out: Path, kernel_dir: Path = KERNEL) -> Path:
    """The kernel folder of an optimiser over `runs` (slugs of training kernels) in `out`: settings and source."""
    if not runs or len(set(runs)) != len(runs):
        raise build.BuildError(f"RUNS={' '.join(runs)!r}: name one or more different training runs (slugs)")
    settings = build.read_settings(kernel_dir) | {"kernel_sources": list(runs)}
    target = out / kernel_dir.name
    target.mkdir(parents=True, exist_ok=True)
    (target / build.SETTINGS_FILE).write_text(yaml.safe_dump(settings, sort_keys=False))
    header = f"# %%\nRUNS = {list(runs)!r}\n\n"
    (target / build.SOURCE_FILE).write_text(header + (kernel_dir / build.SOURCE_FILE).read_text())
    return target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="*", help="slugs of training runs (their outputs in runs/<slug>/)")
    parser.add_argument("--build", type=Path, default=build.ROOT / "build", help="output folder")
    args = parser.parse_args()
    try:
        out_dir = build.build_kernel(variant(args.runs, args.build / "variants"), args.build)
    except build.BuildError as error:
        print(f"build failed: {error}", file=sys.stderr)
        return 1
    print(f"built {out_dir} for the runs {', '.join(args.runs)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
