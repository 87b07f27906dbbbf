"""`make lab`: JupyterLab on 127.0.0.1 where every kernels/*/notebook.py opens as a notebook, run on local inputs.

Usage: python -m tools.local.lab [KERNEL] [--comp COMP] [--runs RUNS] [--lab-dir DIR] [--root DIR] [--port N]
       [JUPYTER ARGS]

Everything it writes is in the lab folder (default .lab/, git-ignored), never in ~/.jupyter: input/ (/kaggle/input for
KERNEL, laid out as `make run` lays it), working/ (each notebook's working folder) and state/ (Jupyter's and
IPython's configuration and state). Arguments it does not know go to `jupyter lab` (e.g.
--ServerApp.shutdown_no_activity_timeout=3600). The lab's set-up: docs/kernels.md, "Editing a kernel in JupyterLab".
"""

import argparse
import json
import os
import secrets
import shutil
import socket
import sys
from pathlib import Path

from build import BuildError, kernel_dir_metadata
from tools.local.run_kernel import ROOT, RunError, kaggle_input, kernel_environment

HOST = "127.0.0.1"
KERNELSPEC = "python3"  # the name build.py gives every notebook's kernel: the lab's own spec shadows the plain one
SOURCE = "notebook.py"
AUTORELOAD = {"extensions": ["autoreload"], "exec_lines": ["%autoreload 2"]}  # modules reloaded before each cell
# no announcements, update checks or PyPI extension listings: the lab asks nothing of the internet
OFFLINE_LAB = {
    "news_url": None,
    "check_for_updates_class": "jupyterlab.NeverCheckForUpdate",
    "extension_manager": "readonly",
}
# JupyterLab's settings by plugin: .py files open as notebooks (jupytext's viewer); no question about news
LAB_SETTINGS = {
    "docmanager-extension/plugin": {"defaultViewers": {"python": "Jupytext Notebook"}},
    "apputils-extension/notification": {"fetchNews": "false"},
}


class LabError(Exception):
    """A lab that cannot start; the message names the file and the fix."""


def kernel_names(root: Path) -> list[str]:
    """The kernels under root/kernels/: folders holding a notebook.py."""
    return sorted(path.parent.name for path in (root / "kernels").glob(f"*/{SOURCE}"))


def free_port() -> int:
    """A TCP port free on the loopback interface now."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def write_json(path: Path, content: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content, indent=1) + "\n")


def write_config(state: Path, root: Path, working: Path, input_root: Path, kernel: str, port: int) -> None:
    """The server's, JupyterLab's, the kernelspec's and IPython's configuration, in the folders that
    run_kernel.kernel_environment(input_root, state) points Jupyter and IPython at."""
    server = {
        "ServerApp": {
            "ip": HOST,
            "port": port,
            "port_retries": 0,
            "open_browser": False,
            "allow_root": True,  # only this user's loopback, behind the token
            "root_dir": str(root),
            "contents_manager_class": "jupytext.AsyncTextFileContentsManager",
        },
        "MappingKernelManager": {"root_dir": str(working)},  # a kernel starts in working/<its notebook's folder>
        "FileCheckpoints": {"root_dir": str(state / "checkpoints")},  # not in .ipynb_checkpoints/ beside the sources
        "LabApp": OFFLINE_LAB,
    }
    write_json(state / "jupyter" / "jupyter_server_config.json", server)
    for plugin, settings in LAB_SETTINGS.items():
        write_json(
            state / "jupyter" / "lab" / "user-settings" / "@jupyterlab" / f"{plugin}.jupyterlab-settings", settings
        )
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": f"Python 3 (lab: {kernel}'s inputs)",
        "language": "python",
        "env": {"PYTHONPATH": str(ROOT), "KERNEL_INPUT_DIR": str(input_root)},
    }
    write_json(state / "jupyter-data" / "kernels" / KERNELSPEC / "kernel.json", spec)
    write_json(
        state / "ipython" / "profile_default" / "ipython_kernel_config.json", {"InteractiveShellApp": AUTORELOAD}
    )


def prepare(kernel: str, comp: Path, runs: Path, lab_dir: Path, root: Path, port: int) -> dict[str, str]:
    """Lay out the lab folder for KERNEL's inputs and return the environment of the server and its kernels."""
    names = kernel_names(root)
    if kernel not in names:
        raise LabError(f"{root / 'kernels' / kernel / SOURCE}: no such kernel; KERNEL is one of {', '.join(names)}")
    try:
        metadata = kernel_dir_metadata(root / "kernels" / kernel)
    except BuildError as error:
        raise LabError(str(error)) from error
    input_root, working, state = lab_dir / "input", lab_dir / "working", lab_dir / "state"
    shutil.rmtree(input_root, ignore_errors=True)  # links of an earlier lab, maybe of another kernel or COMP
    kaggle_input(metadata, comp.resolve(), runs.resolve(), root=input_root, missing_ok=True)
    for name in names:  # a notebook's checkpoints go to checkpoints/kernels/<name>/ when that folder exists
        for folder in working, state / "checkpoints":
            (folder / "kernels" / name).mkdir(parents=True, exist_ok=True)
    write_config(state, root.resolve(), working.resolve(), input_root.resolve(), kernel, port)
    env = kernel_environment(input_root.resolve(), state.resolve())
    env["JUPYTER_PATH"] = env["JUPYTER_DATA_DIR"]  # searched before .venv/share/jupyter: the lab's python3 wins
    return env


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kernel", nargs="?", default="shopee-inference", help="whose inputs the lab lays out")
    parser.add_argument("--comp", type=Path, default=ROOT / "data" / "sample", help="competition data folder")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs", help="folder of run outputs (kernel sources)")
    parser.add_argument("--lab-dir", type=Path, default=ROOT / ".lab", help="the lab's own folder (git-ignored)")
    parser.add_argument("--root", type=Path, default=ROOT, help="the folder the lab serves (holds kernels/)")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    args, jupyter_args = parser.parse_known_args()
    port = args.port or free_port()
    try:
        env = prepare(args.kernel, args.comp, args.runs, args.lab_dir, args.root, port)
    except (LabError, RunError) as error:
        print(f"lab failed: {error}", file=sys.stderr)
        return 1
    env["JUPYTER_TOKEN"] = secrets.token_hex(24)
    print(f"inputs (KERNEL_INPUT_DIR): {args.lab_dir / 'input'}; edits of lib/ reload at the next cell (autoreload)")
    url = f"http://{HOST}:{port}/lab/tree/kernels/{args.kernel}/{SOURCE}?token={env['JUPYTER_TOKEN']}"
    print(f"JupyterLab: {url}", flush=True)
    os.execve(sys.executable, [sys.executable, "-m", "jupyterlab", *jupyter_args], env)


if __name__ == "__main__":
    sys.exit(main())
