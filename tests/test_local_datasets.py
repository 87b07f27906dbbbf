"""tools/local/local_datasets.py: the wheels stand-in (requirements.txt only), never over a real download, and the
kernels' offline install cell a no-op with it in this environment."""

import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

import build
from tools.local import local_datasets

ROOT = Path(__file__).resolve().parent.parent


def test_the_stand_in_is_the_wheels_list_and_a_real_download_is_left_alone(tmp_path, monkeypatch):
    wheels_list = tmp_path / "wheels.txt"
    wheels_list.write_text(f"# a comment\npytest=={version('pytest')}  # pinned\n\nnumpy=={version('numpy')}\n")
    monkeypatch.setattr(local_datasets, "ROOT", tmp_path)
    monkeypatch.setattr(local_datasets, "WHEELS_LIST", wheels_list)
    target = tmp_path / "datasets" / "shopee-wheels"
    assert "stand-in" in local_datasets.stand_in_wheels(target)
    assert (target / "requirements.txt").read_text() == wheels_list.read_text()
    assert [path.name for path in target.iterdir()] == ["requirements.txt"]
    (target / "requirements.txt").write_text("downloaded\n")
    (target / "real-1.0-py3-none-any.whl").write_bytes(b"wheel")
    assert "left as they are" in local_datasets.stand_in_wheels(target)
    assert (target / "requirements.txt").read_text() == "downloaded\n"


def test_a_pin_this_environment_lacks_is_refused_naming_the_line(tmp_path, monkeypatch):
    wheels_list = tmp_path / "wheels.txt"
    wheels_list.write_text(f"pytest=={version('pytest')}\npytest==0.0.1\nsurely-absent-package==1.0\n")
    monkeypatch.setattr(local_datasets, "ROOT", tmp_path)
    monkeypatch.setattr(local_datasets, "WHEELS_LIST", wheels_list)
    with pytest.raises(SystemExit) as refused:
        local_datasets.stand_in_wheels(tmp_path / "shopee-wheels")
    message = str(refused.value)
    assert f"{wheels_list}:2: pytest==0.0.1, but this environment has {version('pytest')}" in message
    assert f"{wheels_list}:3: surely-absent-package==1.0, but this environment has nothing" in message
    assert f"{wheels_list}:1" not in message and not (tmp_path / "shopee-wheels").exists()


def test_the_install_cell_with_the_stand_in_of_tools_wheels_txt_is_a_no_op_offline(tmp_path):
    stand_in = tmp_path / "input" / "shopee-wheels"
    stand_in.mkdir(parents=True)
    (stand_in / "requirements.txt").write_text((ROOT / "tools" / "env" / "wheels.txt").read_text())
    env = {**os.environ, "KERNEL_INPUT_DIR": str(tmp_path / "input"), "PIP_CONFIG_FILE": os.devnull}
    result = subprocess.run([sys.executable, "-c", build.wheels_install()], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    listed = [line for line in (ROOT / "tools" / "env" / "wheels.txt").read_text().splitlines() if "==" in line]
    assert result.stdout == (
        f"the {len(listed)} packages of {stand_in / 'requirements.txt'} are installed at their versions: "
        "nothing to install\n"
    ), "pip is not started where the environment holds every requirement already"
