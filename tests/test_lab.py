"""`make lab` (tools.local.lab): one JupyterLab server on a free loopback port for the module, serving a copy of
kernels/ with the lab's folder, competition and runs under tmp_path; its contents API, its kernel and a headless
chromium."""

import json
import shutil
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import websocket
from playwright.sync_api import sync_playwright

from tools.local.lab import LabError, prepare
from tools.local.run_kernel import RunError

ROOT = Path(__file__).resolve().parent.parent
KERNELS = sorted(path.parent.name for path in (ROOT / "kernels").glob("*/notebook.py"))
COMPETITION = "shopee-product-matching"
CHROMIUM = Path("/usr/bin/chromium")  # Debian's; `make test` installs it (make browser)
# headless on a machine without internet: no GPU, no QUIC, no background requests, updates or sync
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# should this test process die, its server culls its idle kernels, then stops once idle for as long
IDLE_STOP = [
    f"--{setting}=120"
    for setting in ("MappingKernelManager.cull_idle_timeout", "ServerApp.shutdown_no_activity_timeout")
]


@dataclass
class Lab:
    """A running lab: its address, token and folders."""

    base: str
    token: str
    url: str
    root: Path
    comp: Path
    lab_dir: Path

    def api(self, method: str, path: str, body: dict | None = None):
        """A call to the server's REST API, answered as JSON (None when empty)."""
        data = None if body is None else json.dumps(body).encode()
        headers = {"Authorization": f"token {self.token}", "Content-Type": "application/json"}
        request = urllib.request.Request(f"{self.base}/api/{path}", data=data, method=method, headers=headers)
        with urllib.request.urlopen(request, timeout=60) as answer:
            return json.loads(answer.read() or b"null")


def competition_folder(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "train.csv").write_text("posting_id,image,image_phash,title,label_group\n")
    return folder


def printed_url(log: Path) -> str | None:
    """The address tools/local/lab.py prints, once it has."""
    return next((line.split()[1] for line in log.read_text().splitlines() if line.startswith("JupyterLab: ")), None)


def wait_for(answer, server: subprocess.Popen, log: Path):
    """answer()'s first true value (an OSError counts as none); fails with the log if the server stops or a minute
    passes."""
    deadline = time.monotonic() + 60
    while True:
        try:
            found = answer()
        except OSError:
            found = None
        if found:
            return found
        assert server.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.2)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """tools/local/lab.py started as `make lab` starts it, on tmp folders; stopped after the module."""
    base = tmp_path_factory.mktemp("lab")
    root = base / "root"
    shutil.copytree(ROOT / "kernels", root / "kernels", ignore=shutil.ignore_patterns("__pycache__"))
    comp = competition_folder(base / "comp")
    command = [sys.executable, "-m", "tools.local.lab", "shopee-inference", "--comp", comp, "--runs", base / "runs"]
    command += ["--lab-dir", base / "lab", "--root", root, "--MappingKernelManager.cull_interval=30", *IDLE_STOP]
    log = base / "server.log"
    with log.open("w") as output:
        server = subprocess.Popen(command, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT)
    try:
        url = wait_for(lambda: printed_url(log), server, log)
        started = Lab(url.split("/lab/")[0], url.split("token=")[1], url, root, comp, base / "lab")
        wait_for(lambda: started.api("GET", "status"), server, log)
        yield started
        for session in started.api("GET", "sessions"):  # kernels shut down before the server stops
            started.api("DELETE", f"sessions/{session['id']}")
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            raise


def percent_cells(text: str) -> list[tuple[str, str]]:
    """(kind, first line) of each cell of a py:percent source, read naively: a cell starts at a `# %%` line."""
    cells = []
    for block in text.split("# %%")[1:]:
        marker, _, body = block.partition("\n")
        kind = "markdown" if marker.strip() == "[markdown]" else "code"
        first = body.strip("\n").split("\n")[0]
        cells.append((kind, first.removeprefix("# ") if kind == "markdown" else first))
    return cells


@pytest.mark.parametrize("kernel", KERNELS)
def test_each_kernel_source_opens_as_a_notebook_of_its_cells_and_saves_byte_identical(lab, kernel):
    path = f"kernels/{kernel}/notebook.py"
    model = lab.api("GET", f"contents/{path}?type=notebook")
    assert model["type"] == "notebook"
    cells = [(cell["cell_type"], cell["source"].split("\n")[0]) for cell in model["content"]["cells"]]
    assert cells == percent_cells((ROOT / path).read_text())
    lab.api("PUT", f"contents/{path}", {"type": "notebook", "format": "json", "content": model["content"]})
    assert (lab.root / path).read_bytes() == (ROOT / path).read_bytes()
    written = [p for p in lab.root.rglob("*") if p.suffix == ".ipynb" or p.name == ".ipynb_checkpoints"]
    assert written == []


def execute(lab: Lab, kernel_id: str, code: str) -> str:
    """Run code in a kernel through the server's websocket; its standard output (the error's traceback on failure)."""
    channels = websocket.create_connection(f"ws{lab.base[4:]}/api/kernels/{kernel_id}/channels?token={lab.token}")
    request = uuid.uuid4().hex
    header = {"msg_id": request, "msg_type": "execute_request", "session": uuid.uuid4().hex, "version": "5.3"}
    content = {"code": code, "silent": False, "store_history": False}
    channels.send(json.dumps({"header": header, "parent_header": {}, "metadata": {}, "content": content}))
    output = []
    try:
        while True:
            message = json.loads(channels.recv())
            if message["parent_header"].get("msg_id") != request:
                continue
            if message["msg_type"] == "stream":
                output.append(message["content"]["text"])
            if message["msg_type"] == "error":
                raise AssertionError("\n".join(message["content"]["traceback"]))
            if message["msg_type"] == "status" and message["content"]["execution_state"] == "idle":
                return "".join(output)  # the kernel is idle after the request's last output (a reply may come first)
    finally:
        channels.close()


def test_a_cell_of_the_lab_kernel_imports_lib_and_finds_the_competition_with_autoreload_on(lab):
    session = {"path": "kernels/shopee-inference/notebook.py", "type": "notebook", "kernel": {"name": "python3"}}
    session = lab.api("POST", "sessions", session)
    try:
        code = (
            "import json, os, lib\nfrom lib.data import paths\n"
            "reloader = get_ipython().magics_manager.registry['AutoreloadMagics']._reloader\n"
            f"print(json.dumps([lib.__path__[0], str(paths.input_dir({COMPETITION!r}).resolve()), "
            "os.getcwd(), reloader.enabled, reloader.check_all]))"
        )
        found = json.loads(execute(lab, session["kernel"]["id"], code))
    finally:
        lab.api("DELETE", f"sessions/{session['id']}")
    working = lab.lab_dir / "working" / "kernels" / "shopee-inference"
    assert found == [str(ROOT / "lib"), str(lab.comp.resolve()), str(working.resolve()), True, True]


def test_jupyterlab_in_chromium_shows_the_inference_kernel_as_a_notebook(lab, tmp_path):
    assert CHROMIUM.is_file(), f"{CHROMIUM} is missing: `make browser` installs it"
    with sync_playwright() as driver:
        browser = driver.chromium.launch_persistent_context(
            tmp_path / "chromium-profile", executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page()
            page.goto(lab.url)
            title = page.locator(".jp-RenderedMarkdown h1", has_text="Shopee - Price Match Guarantee: inference")
            try:
                title.wait_for(timeout=90_000)
            finally:
                page.screenshot(path=tmp_path / "lab.png")
            page.get_by_text("Python 3 (lab: shopee-inference's inputs) | Idle").wait_for(timeout=90_000)
        finally:
            browser.close()
    assert (tmp_path / "lab.png").stat().st_size > 10_000


def test_an_unknown_kernel_or_a_competition_folder_without_train_csv_is_refused(tmp_path):
    with pytest.raises(LabError, match="kernels/nope/notebook.py: no such kernel; KERNEL is one of optimize-ensemble"):
        prepare("nope", tmp_path / "comp", tmp_path / "runs", tmp_path / "lab", ROOT, 8888)
    (tmp_path / "comp").mkdir()
    with pytest.raises(RunError, match="comp: no train.csv"):
        prepare("shopee-inference", tmp_path / "comp", tmp_path / "runs", tmp_path / "lab", ROOT, 8888)
