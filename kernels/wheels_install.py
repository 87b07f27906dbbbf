# Offline packages (build.py): the wheels of the attached shopee-wheels dataset unless installed.
import subprocess
import sys
from importlib import metadata

from lib.data import paths


def wheel_installed(requirement: str) -> bool:
    """Whether a `name==version` line of the wheels' requirements.txt is installed at that version."""
    name, _, version = requirement.partition("==")
    try:
        return metadata.version(name.strip()) == version.strip()
    except metadata.PackageNotFoundError:
        return False


try:
    REQUIREMENTS = paths.input_dir("shopee-wheels") / "requirements.txt"
except FileNotFoundError:
    REQUIREMENTS = None
if REQUIREMENTS and REQUIREMENTS.is_file():
    wanted = [line.split("#")[0].strip() for line in REQUIREMENTS.read_text().splitlines()]
    wanted = [line for line in wanted if line]
    if all(wheel_installed(requirement) for requirement in wanted):
        print(f"the {len(wanted)} packages of {REQUIREMENTS} are installed at their versions: nothing to install")
    else:
        command = [sys.executable, "-m", "pip", "install", "--no-index", "--find-links", str(REQUIREMENTS.parent)]
        command += ["-r", str(REQUIREMENTS)]
        print("installing offline:", " ".join(command))
        pip = subprocess.run(command, capture_output=True, text=True)
        lines = (pip.stdout + pip.stderr).splitlines()
        satisfied = [line for line in lines if line.startswith("Requirement already satisfied")]
        print("\n".join(line for line in lines if line not in satisfied and not line.startswith("Looking in links")))
        print(f"{len(satisfied)} requirement(s) already satisfied by the image")
        if pip.returncode != 0:
            raise RuntimeError(
                f"pip could not install {REQUIREMENTS} offline (its output is above): add what it lacks to "
                "tools/env/wheels.txt, then `make wheels` and `make upload-weights DATASET=wheels`"
            )
else:
    print(f"no shopee-wheels/requirements.txt under {paths.input_root()}: the packages of the image are used")
