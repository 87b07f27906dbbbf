"""Check that each lock agrees with the list it is compiled from, and that an environment holds exactly its lock.

Usage: python -m tools.env.lock_check                  every list against its lock (LOCKS)
       python -m tools.env.lock_check --installed LOCK  the running environment against LOCK

Exits 1 naming each package that disagrees, with the fix.
"""

import argparse
import re
import sys
from importlib.metadata import distributions
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
LOCKS = {"requirements.in": "requirements.lock", "requirements-kaggle-image.in": "requirements-kaggle-image.lock"}
VENV_OWN = {"pip", "setuptools"}  # put there by `python -m venv`, not by the lock
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def locked_versions(lock: Path) -> dict[str, str]:
    """Package name (canonical) -> the version a lock pins."""
    pins = (PIN.match(line) for line in lock.read_text().splitlines())
    return {canonicalize_name(pin[1]): pin[2] for pin in pins if pin}


def listed_requirements(listing: Path) -> tuple[list[tuple[str, Requirement]], list[tuple[str, Requirement]]]:
    """The requirements and the constraints (`-c FILE` lines) of a list, each with the file and line it is on."""
    requirements, constraints = [], []
    for number, line in enumerate(listing.read_text().splitlines(), start=1):
        text = line.split("#")[0].strip()
        if text.startswith("-c "):
            constraints += listed_requirements(listing.parent / text[3:].strip())[0]
        elif text:
            requirements.append((f"{listing.name}:{number}", Requirement(text)))
    return requirements, constraints


def list_problems(listing: Path, lock: Path) -> list[str]:
    """Each requirement of `listing` that `lock` lacks, and each requirement or constraint the lock's pin breaks."""
    pins = locked_versions(lock)
    requirements, constraints = listed_requirements(listing)
    problems = []
    for where, requirement in requirements + constraints:
        name = canonicalize_name(requirement.name)
        if name not in pins:
            if (where, requirement) in requirements:
                problems.append(f"{where}: {requirement} is missing from {lock.name}; run `make lock`")
        elif pins[name] not in requirement.specifier:
            problems.append(f"{where}: {requirement}, but {lock.name} pins {name}=={pins[name]}; run `make lock`")
    return problems


def installed_problems(lock: Path) -> list[str]:
    """Each package of the running environment that is not at its locked version, and each locked one missing."""
    pins = locked_versions(lock)
    installed = {canonicalize_name(d.metadata["Name"]): d.version for d in distributions()}
    problems = [
        f"{name}=={version} is installed but {lock.name} pins {name}=={pins[name]}"
        if name in pins
        else f"{name}=={version} is installed but not in {lock.name}"
        for name, version in sorted(installed.items())
        if name not in VENV_OWN and pins.get(name) != version
    ]
    missing = sorted(set(pins) - set(installed))
    problems += [f"{name}=={pins[name]} is in {lock.name} but not installed" for name in missing]
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--installed", type=Path, help="check the running environment against this lock")
    args = parser.parse_args()
    if args.installed:
        problems = installed_problems(args.installed)
        fix = f"recreate the environment from {args.installed} (`make setup` deletes .venv and installs it again)"
    else:
        problems = [p for listing, lock in LOCKS.items() for p in list_problems(ROOT / listing, ROOT / lock)]
        fix = "each lock must hold every package of its list at a version the list allows"
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"{len(problems)} package(s) disagree: {fix}", file=sys.stderr)
        return 1
    print("the locks agree" if not args.installed else f"this environment holds exactly {args.installed}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
