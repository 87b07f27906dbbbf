"""The `kaggle` CLI as a subprocess: its output shown as it comes, a non-zero exit raised with what it printed."""

import os
import subprocess
import sys
from pathlib import Path

KAGGLE_CLI = Path(sys.executable).with_name("kaggle")


class DeliveryError(Exception):
    """A delivery step that cannot go on; the message says why and what to do."""


class CliFailed(DeliveryError):
    """The kaggle CLI exited non-zero; `output` is what it printed."""

    def __init__(self, message: str, output: str):
        super().__init__(message)
        self.output = output

    @property
    def forbidden(self) -> bool:
        """Whether Kaggle answered 403 (the CLI prints "You don't have access to this resource" for it)."""
        return "403" in self.output or "don't have access" in self.output


def cli_command(*args: str) -> list[str]:
    """The command line of the kaggle CLI with args; raise when the CLI is not installed."""
    if not KAGGLE_CLI.is_file():
        raise DeliveryError(f"{KAGGLE_CLI}: the kaggle CLI is not installed; run `make setup`")
    return [str(KAGGLE_CLI), *args]


def cli_environment() -> dict[str, str]:
    """This process's environment, with the CLI's output unbuffered so that it comes line by line."""
    return {**os.environ, "PYTHONUNBUFFERED": "1"}


def kaggle(*args: str, echo: bool = True) -> str:
    """Run the kaggle CLI, echoing its output as it comes (without `echo`, only when it fails), and return that output;
    raise if it exits non-zero."""
    command, env = cli_command(*args), cli_environment()
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env) as process:
        lines = []
        for line in process.stdout:
            if echo:
                print(line if line.endswith("\n") else line + "\n", end="", flush=True)
            lines.append(line)
    if process.returncode != 0:
        if not echo:
            print("".join(lines), end="", flush=True)
        message = f"`kaggle {' '.join(args[:2])}` exited with {process.returncode}; its output is above"
        raise CliFailed(message, "".join(lines))
    return "".join(lines)
