"""tools.local.kernel_console: a notebook's outputs shown as they come, by a real Jupyter kernel; its failure reported
by the failing cell, the exception and the frames of the notebook and of lib, other libraries folded."""

import io
import json
import time
from pathlib import Path

import nbformat
import pytest
from nbclient.exceptions import CellExecutionError

from tools.local import kernel_console
from tools.local.kernel_console import Console, StreamingClient, failure_report


class Clock:
    """A clock the test moves."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_stream_text_is_shown_by_lines_and_a_redrawn_progress_bar_at_a_readable_rate():
    out, clock = io.StringIO(), Clock()
    console = Console(out, translate=lambda line: line.replace("/tmp/in", "data/sample"), clock=clock)
    console.stream("stdout", "reading /tmp/in/test.csv\npart")
    assert out.getvalue() == "reading data/sample/test.csv\n", "a line is shown once it is whole"
    console.stream("stdout", "ial line\n")
    bar = ["\r  0%|          | 0/4", "\r 25%|##        | 1/4", "\r 50%|#####     | 2/4", "\r 75%|#######   | 3/4"]
    for step, update in enumerate(bar):
        clock.now = step * 2.0  # an update every 2 s: the first and one 5 s or more later are shown
        console.stream("stderr", update)
    clock.now = 7.0
    console.stream("stderr", "\r100%|##########| 4/4\n")
    assert out.getvalue().splitlines() == [
        "reading data/sample/test.csv",
        "partial line",
        "  0%|          | 0/4",
        " 75%|#######   | 3/4",
        "100%|##########| 4/4",
    ]
    console.stream("stdout", "no newline yet")
    console.flush()
    assert out.getvalue().splitlines()[-1] == "no newline yet"


def test_a_silent_cell_gets_a_line_every_heartbeat():
    out, clock = io.StringIO(), Clock()
    console = Console(out, clock=clock)
    console.start("cell 3 `search()`")
    clock.now = kernel_console.HEARTBEAT_S - 1
    console.heartbeat()
    assert out.getvalue() == ""
    clock.now = kernel_console.HEARTBEAT_S
    console.heartbeat()
    clock.now = kernel_console.HEARTBEAT_S + 1
    console.heartbeat()
    assert out.getvalue() == f"  ... cell 3 `search()`: running for {kernel_console.HEARTBEAT_S:.0f} s\n"


class Timed(io.StringIO):
    """A console stream that keeps when each line was written."""

    def __init__(self):
        super().__init__()
        self.lines: list[tuple[float, str]] = []

    def write(self, text: str) -> int:
        self.lines += [(time.monotonic(), line) for line in text.splitlines()]
        return super().write(text)


def execute(cells: list, out, tmp_path, **options) -> nbformat.NotebookNode:
    """The notebook of these cells executed by a real kernel with its outputs on a Console writing to `out`."""
    notebook = nbformat.v4.new_notebook()
    notebook.cells = cells
    client = StreamingClient(notebook, Console(out), kernel_name="python3", timeout=60, **options)
    client.execute()
    return notebook


def test_outputs_are_shown_while_the_cell_runs_and_the_library_cells_as_one_line(tmp_path):
    out = Timed()
    cells = [
        nbformat.v4.new_markdown_cell("## Reading\nwhat it reads"),
        nbformat.v4.new_code_cell(f"%%writefile {tmp_path}/a.py\nx = 1"),
        nbformat.v4.new_code_cell(f"%%writefile {tmp_path}/b.py\ny = 2"),
        nbformat.v4.new_code_cell("import time\nprint('first', flush=True)\ntime.sleep(3)\nprint('second')\n6 * 7"),
    ]
    notebook = execute(cells, out, tmp_path)
    lines = [line for _, line in out.lines]
    assert lines == ["## Reading", "(writing the 2 inlined lib modules)", "first", "second", "42"]
    when = dict((line, moment) for moment, line in out.lines)
    assert when["second"] - when["first"] > 2.5, "'first' was shown while the cell still ran"
    assert notebook.cells[3].outputs[0]["text"].startswith("first"), "the executed notebook keeps every output"


def test_a_silent_cell_is_reported_while_it_runs(tmp_path, monkeypatch):
    monkeypatch.setattr(kernel_console, "HEARTBEAT_S", 1.0)
    out = Timed()
    execute([nbformat.v4.new_code_cell("import time\ntime.sleep(5)")], out, tmp_path)
    beats = [line for _, line in out.lines if "running for" in line]
    assert 2 <= len(beats) <= 6 and all(line.startswith("  ... cell 1 `import time`: running for") for line in beats)


def test_a_failure_is_its_cell_the_exception_and_the_frames_of_the_notebook_and_lib(tmp_path):
    lib = tmp_path / "kernel-lib-abc123" / "lib"
    lib.mkdir(parents=True)
    (lib / "__init__.py").write_text("")
    (lib / "reader.py").write_text("import pandas as pd\n\n\ndef read(path):\n    return pd.read_csv(path)\n")
    (tmp_path / "bad.csv").write_bytes("a\n\xe9\n".encode("latin-1"))
    kernels = tmp_path / "kernels" / "k"
    kernels.mkdir(parents=True)
    reading = "def load():\n    return read(PATH)\n"
    failing = "x = 1\ny = 2\nz = 3\nw = 4\nframe = load()\n"
    (kernels / "notebook.py").write_text(f"# %%\nfrom lib.reader import read\n\n# %%\n{reading}\n# %%\n{failing}")
    cells = [
        nbformat.v4.new_code_cell(
            f"import sys\nsys.path.insert(0, {str(lib.parent)!r})\nPATH = {str(tmp_path)!r} + '/bad.csv'"
        ),
        nbformat.v4.new_code_cell("from lib.reader import read"),
        nbformat.v4.new_code_cell(reading.rstrip("\n")),
        nbformat.v4.new_code_cell(failing.rstrip("\n")),
    ]
    out = io.StringIO()
    with pytest.raises(CellExecutionError):
        execute(cells, out, tmp_path)
    notebook = nbformat.v4.new_notebook()
    notebook.cells = cells
    report = failure_report(notebook, [kernels / "notebook.py"], tmp_path).splitlines()
    assert report[:7] == [
        "cell 4 failed:",
        "    x = 1",
        "    y = 2",
        "    z = 3",
        "    w = 4",
        "    ... (1 more lines)",
        "UnicodeDecodeError: 'utf-8' codec can't decode byte 0xe9 in position 0: unexpected end of data",
    ]
    assert report[7] == "where (the notebook's cells and lib; other libraries folded):"
    assert report[8] == "  cell 4 (kernels/k/notebook.py line 13): frame = load()"
    assert report[9] == "  cell 3 (kernels/k/notebook.py line 6), in load: return read(PATH)"
    assert report[10] == "  lib/reader.py line 5, in read: return pd.read_csv(path)"
    assert report[11].startswith("  ... ") and report[11].endswith(" frame(s) in pandas")
    assert len(report) == 12 and "Traceback" not in out.getvalue(), "the error is reported once, by the report"


def test_a_failure_in_ipython_7_as_in_kaggles_image_is_reported_alike(tmp_path):
    recorded = json.loads((Path(__file__).parent / "fixtures" / "ipython7_traceback.json").read_text())
    kernels = tmp_path / "kernels" / "k"
    kernels.mkdir(parents=True)
    reading = "def load():\n    return read(PATH)"
    failing = "x = 1\ny = 2\nz = 3\nw = 4\nframe = load()"
    (kernels / "notebook.py").write_text(f"# %%\nfrom lib.reader import read\n\n# %%\n{reading}\n\n\n# %%\n{failing}\n")
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell(source) for source in ["PATH = 'bad.csv'", "from lib.reader import read"]
    ]
    notebook.cells += [nbformat.v4.new_code_cell(reading), nbformat.v4.new_code_cell(failing)]
    notebook.cells[3].outputs = [nbformat.v4.new_output("error", **{k: recorded[k] for k in ("ename", "evalue")})]
    notebook.cells[3].outputs[0]["traceback"] = recorded["traceback"]
    report = failure_report(notebook, [kernels / "notebook.py"], tmp_path).splitlines()
    assert report[6:] == [
        "UnicodeDecodeError: 'utf-8' codec can't decode byte 0xe9 in position 4: invalid continuation byte",
        "where (the notebook's cells and lib; other libraries folded):",
        "  cell 4 (kernels/k/notebook.py line 14): frame = load()",
        "  cell 3 (kernels/k/notebook.py line 6), in load: return read(PATH)",
        "  lib/reader.py line 5, in read: return pd.read_csv(path)",
        "  ... 10 frame(s) in pandas",
    ]
