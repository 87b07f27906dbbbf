"""make gpu-bundle: what `make gpu-check` needs on a CUDA machine with no network whose Python already holds torch,
timm and transformers (its packages listed in tools/env/device_image.txt), in .gpu-bundle/ (git-ignored; about 50 MiB):
wheels/ (what the machine's image lacks, at the lock's versions), sample/ (a 300-row sample competition), tiny-text/
(a two-layer BERT of random weights with MiniLM's tokenizer) and run.sh (the command to run there, from the
repository's root). The contents: docs/environments.md, "A CUDA machine without network".

Usage: python -m tools.gpu.bundle [--out .gpu-bundle]
"""

import argparse
import shutil
import sys
from pathlib import Path

from tools.data.make_sample import make_sample
from tools.env.lock_check import locked_versions
from tools.env.wheels import LOCK, download, kernel_needs, wheel_list

ROOT = Path(__file__).resolve().parents[2]
DEVICE_IMAGE = ROOT / "tools" / "env" / "device_image.txt"
MINILM = ROOT / "data" / "datasets" / "all-minilm-l6-v2"
TOKENIZER_FILES = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"]
RUN = """#!/bin/sh
# make gpu-check on a machine whose Python holds torch, from the repository's root: OUT (default runs/) gets the log.
set -e
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/gpu-site {bundle}/wheels/*.whl
export PYTHONPATH=/tmp/gpu-site PYTHONUNBUFFERED=1
python3 tools/gpu/check.py --sample {bundle}/sample --text-model {bundle}/tiny-text --out /tmp/gpu-check \\
  2>&1 | tee "${{OUT:-runs}}/gpu-check.log"
"""


def device_packages() -> tuple[set[str], str]:
    """The names of the packages the device's image holds, and its Python as major.minor."""
    lines = DEVICE_IMAGE.read_text().splitlines()
    python = next(line.split()[-1] for line in lines if line.startswith("# python "))
    return {line.strip().lower() for line in lines if line.strip() and not line.startswith("#")}, python[:4]


def wheels(target: Path) -> list[Path]:
    """Download what the device lacks into target."""
    held, python = device_packages()
    lock = locked_versions(LOCK)
    image = {name: lock[name] for name in held if name in lock}  # trusted: as if at the lock's version
    listed = wheel_list([name for name in kernel_needs() if name not in held], image, lock, python)
    requirements = target.parent / "requirements.txt"
    requirements.write_text("".join(f"{name}=={line}\n" for name, line in listed.items()))
    return download(requirements, target, python)


def tiny_text_model(target: Path) -> None:
    """A two-layer, 128-wide BERT of random weights with MiniLM's tokenizer."""
    from transformers import BertConfig, BertModel

    config = BertConfig(hidden_size=128, num_hidden_layers=2, num_attention_heads=2, intermediate_size=256)
    BertModel(config).save_pretrained(target)
    for name in TOKENIZER_FILES:
        shutil.copy(MINILM / name, target / name)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / ".gpu-bundle")
    args = parser.parse_args()
    if not (MINILM / "vocab.txt").is_file():
        print(f"gpu-bundle: {MINILM} missing; `make datasets` copies it", file=sys.stderr)
        return 1
    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    found = wheels(args.out / "wheels")
    make_sample(args.out / "sample", seed=0, rows=300, hidden=False)
    tiny_text_model(args.out / "tiny-text")
    (args.out / "run.sh").write_text(RUN.format(bundle=args.out.relative_to(ROOT)))
    size = sum(path.stat().st_size for path in args.out.rglob("*") if path.is_file()) / 2**20
    print(f"{args.out}: {len(found)} wheels, a 300-row sample, the tiny text model; {size:.1f} MiB")
    print(f"on the CUDA machine, from the repository's root: sh {args.out.relative_to(ROOT)}/run.sh")
    return 0


if __name__ == "__main__":
    sys.exit(main())
