"""tools/gpu/check.py run small on the CPU (--allow-cpu): every check runs and the table is printed; on a CUDA machine
`make gpu-check` runs the same code at 70,000 rows."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_gpu_check_runs_every_check_and_prints_measured_against_projected(tmp_path, minilm):
    sample = tmp_path / "sample"
    make_sample = [sys.executable, "-m", "tools.data.make_sample", "--out", sample, "--rows", "100", "--seed", "6"]
    subprocess.run(list(map(str, make_sample)), check=True, capture_output=True, cwd=ROOT)
    command = [sys.executable, "-m", "tools.gpu.check", "--allow-cpu", "--sample", sample, "--text-model", minilm]
    command += ["--rows", "360", "--from-rows", "120", "--out", tmp_path / "out"]
    result = subprocess.run(list(map(str, command)), capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    table = result.stdout
    for stage in ["demo: read images", "demo: embeddings", "concat: inb", "concat: neighbours", "tfidf: neighbours"]:
        assert stage in table
    assert "projected: from 120 rows to 360 on this device" in table
    assert "rows differing from the exact answer: 0 of 360" in table
    assert "one training epoch on the sample" in table and "CUDA tests: " in table
    assert "the pair classifier's training (lib/second_stage/booster.py): LightGBM on the CPU: no CUDA device" in table


def test_without_cuda_it_says_so_and_stops():
    result = subprocess.run([sys.executable, "-m", "tools.gpu.check"], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 1 and "no CUDA device here" in result.stderr
