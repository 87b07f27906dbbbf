"""A notebook executed in a Jupyter kernel with its outputs shown on the terminal as they come, and its failure as a
short report: the failing cell, the exception, the frames of the kernel and of lib (other libraries folded).

`make run`, `make train`, `make optimize`, `make demo` and `make timing` execute notebooks with nbclient. nbclient
hands every message of the kernel to `NotebookClient.process_message`; the client here shows each output there, as
papermill's `log_output` does inside papermill. nbclient is kept rather than papermill: the runner already uses it,
papermill would add a dependency and its own parameter injection to what `build.py` writes, and the hook is one
method. The executed notebook is still saved whole by the caller.
"""

import re
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from nbclient import NotebookClient

HEARTBEAT_S = 10.0  # a running cell silent this long gets a line saying so
PROGRESS_EVERY_S = 5.0  # a progress bar redrawn in place is shown at most this often (and its last state)
LIB_FOLDER = re.compile(r"\S*/kernel-lib-[^/\s]+/")  # where a built notebook writes the inlined lib (build.py)
ANSI = re.compile(r"\x1b\[[0-9;]*m")
CELL_FRAME = re.compile(r"^Cell In\[(\d+)\], line (\d+)(?:, in (.*))?")  # IPython 8 and later
FILE_FRAME = re.compile(r"^File (?P<path>\S+?):(?P<line>\d+)(?:, in (?P<function>.*))?")  # IPython 8 and later
OLD_FRAME = re.compile(r"^(?P<path>\S+) in (?P<function>.+)(?P<line>)$")  # IPython 7 (Kaggle's image)
KERNEL_CELL_FILE = re.compile(r"/ipykernel_\d+/\d+\.py$|^<ipython-input-")  # where IPython 7 runs a cell's code
NUMBERED = re.compile(r"^(-*>)?\s*(\d+)\s?(.*)$")  # a shown line of code: arrow (the failing line), number, code
STANDARD_LIBRARY = re.compile(r"/lib/python3[.\d]*/(\w+)")
SOURCE_LINES = 4  # lines of the failing cell shown in the report


def plain(text: str) -> str:
    """Text without the terminal colours IPython puts into tracebacks."""
    return ANSI.sub("", text)


class Console:
    """Shows a run's outputs line by line on a stream, as a terminal would show them, and a line when it is silent.

    Stream text is shown by whole lines; a line redrawn in place (a progress bar's carriage returns) is shown at most
    every PROGRESS_EVERY_S seconds and in its last state. Other outputs show their plain text. `translate` rewrites
    each line (local paths for the kernel's temporary ones).
    """

    def __init__(self, out=sys.stdout, translate=lambda line: line, clock=time.monotonic):
        self.out, self.translate, self.clock = out, translate, clock
        self.lock = threading.Lock()
        self.partial: dict[str, str] = {}  # each stream's text after its last newline
        self.last_shown = clock()
        self.progress_shown = {}  # each stream's last progress line shown, and when
        self.running: tuple[str, float] | None = None  # what runs now, since when

    def show(self, line: str) -> None:
        """Write one line."""
        with self.lock:
            self.out.write(self.translate(line.rstrip("\n")) + "\n")
            self.out.flush()
            self.last_shown = self.clock()

    def stream(self, name: str, text: str) -> None:
        """Text of the kernel's stdout or stderr, as it comes."""
        lines = (self.partial.pop(name, "") + text).split("\n")
        for line in lines[:-1]:
            shown = line.rsplit("\r", 1)[-1]
            if shown != self.progress_shown.get(name, ("", float("-inf")))[0]:
                self.show(shown)
            self.progress_shown.pop(name, None)
        rest = lines[-1]
        if "\r" in rest:
            rest = rest.rsplit("\r", 1)[-1]
            last, when = self.progress_shown.get(name, ("", float("-inf")))
            if rest.strip() and rest != last and self.clock() - when >= PROGRESS_EVERY_S:
                self.show(rest)
                self.progress_shown[name] = (rest, self.clock())
            rest = "\r" + rest
        self.partial[name] = rest

    def flush(self) -> None:
        """Show what the streams hold after their last newline (a cell ended)."""
        for name in list(self.partial):
            self.stream(name, "\n")
        self.partial.clear()

    def output(self, output: dict) -> None:
        """One output of a cell: stream text, or the plain text of a result or display (images by their type)."""
        if output["output_type"] == "stream":
            self.stream(output["name"], output["text"])
        elif output["output_type"] in ("execute_result", "display_data"):
            data = output.get("data", {})
            if "text/plain" in data and not any(kind.startswith("image/") for kind in data):
                for line in data["text/plain"].split("\n"):
                    self.show(line)
            else:
                self.show(f"[{', '.join(kind for kind in data if kind != 'text/plain')}]")

    def start(self, what: str) -> None:
        """A cell started: say so when it stays silent."""
        self.flush()
        self.running = (what, self.clock())

    def heartbeat(self) -> None:
        """A line when the running cell has shown nothing for HEARTBEAT_S seconds."""
        if self.running and self.clock() - self.last_shown >= HEARTBEAT_S:
            what, since = self.running
            self.show(f"  ... {what}: running for {self.clock() - since:.0f} s")


class StreamingClient(NotebookClient):
    """nbclient's executor that shows each output on a Console as the kernel sends it, the kernel's own Markdown
    headings as they are passed, and a line for a cell silent for HEARTBEAT_S seconds. The cells that write the
    inlined lib (%%writefile) are shown as one line. The kernel talks over IPC sockets in Linux's abstract namespace
    (no files, so no limit on the length of a temporary folder's path): a local kernel needs no TCP ports, and
    ipykernel warns at every start about unencrypted ones."""

    def __init__(self, notebook, console: Console, **options):
        super().__init__(notebook, **options)
        self.console = console
        self.on_cell_start = self.cell_started
        self.on_cell_complete = lambda cell, cell_index: console.flush()

    def create_kernel_manager(self):
        manager = super().create_kernel_manager()
        manager.transport, manager.ip = "ipc", f"@kernel-{uuid.uuid4().hex}"
        return manager

    def cell_started(self, cell, cell_index: int) -> None:
        """Show a heading, say the library is written, or note the cell as running."""
        first = cell.source.strip().split("\n")[0]
        if cell.cell_type == "markdown" and first.startswith("#"):
            self.console.show(first)
        if cell.cell_type != "code":
            return
        if first.startswith("%%writefile"):
            writing = sum(c.cell_type == "code" and c.source.startswith("%%writefile") for c in self.nb.cells)
            if not any(c.source.startswith("%%writefile") for c in self.nb.cells[:cell_index]):
                self.console.show(f"(writing the {writing} inlined lib modules)")
        self.console.start(f"cell {cell_index + 1} `{first[:60]}`")

    def process_message(self, msg, cell, cell_index):
        output = super().process_message(msg, cell, cell_index)
        if output is not None and not cell.source.startswith("%%writefile") and output["output_type"] != "error":
            self.console.output(output)
        return output

    def execute(self, **options):
        """Execute the notebook with a heartbeat thread watching the console."""
        done = threading.Event()

        def beat():
            while not done.wait(1.0):
                self.console.heartbeat()

        watcher = threading.Thread(target=beat, daemon=True)
        watcher.start()
        try:
            return super().execute(**options)
        finally:
            done.set()
            watcher.join()
            self.console.flush()


def library_of(path: str, function: str) -> str | None:
    """The package a traceback frame's file belongs to when it is neither the notebook's nor lib's (an installed
    package, the standard library, a compiled module's source), else None."""
    for folder in ("site-packages/", "dist-packages/"):
        if folder in path:
            return path.split(folder, 1)[1].split("/")[0]
    standard = STANDARD_LIBRARY.search(path)
    if standard:
        return standard[1]
    if path.endswith((".pyx", ".pxd")):  # IPython 8 names its folder, IPython 7 only the file and the function
        return path.split("/")[0] if "/" in path else function.split(".")[0]
    return None


def failed_cell(notebook) -> tuple[int, dict] | None:
    """The index and the error output of the cell that failed, or None."""
    for index, cell in enumerate(notebook.cells):
        for output in cell.get("outputs", []):
            if output["output_type"] == "error":
                return index, output
    return None


def source_line(cell_source: str, sources: list[Path]) -> tuple[Path, int] | None:
    """The kernel source file holding a cell's text and the line the cell starts on, or None."""
    for path in sources:
        text = path.read_text() if path.is_file() else ""
        found = text.find(cell_source) if cell_source.strip() else -1
        if found >= 0:
            return path, text[:found].count("\n") + 1
    return None


@dataclass
class Frame:
    """One frame of a kernel's traceback: its file (None for a notebook cell), line, function, the failing line's code,
    and the numbered lines it shows."""

    path: str | None
    line: int
    function: str
    code: str
    shown: list[tuple[int, str]]
    count: int | None = None  # a cell's execution count, where the traceback gives it


def parse_frame(entry: str) -> Frame | None:
    """A traceback entry as IPython 8 and later write it ("Cell In[3], line 2, in f()", "File path:12, in f(x)") or
    IPython 7 (Kaggle's image: "path in f(x)", a cell's code in ipykernel's temporary folder); None for other
    lines."""
    lines = plain(entry).strip("\n").split("\n")
    shown = [(int(m[2]), m[3]) for line in lines[1:] if (m := NUMBERED.match(line))]
    arrow = next(((int(m[2]), m[3].strip()) for line in lines[1:] if (m := NUMBERED.match(line)) and m[1]), (0, ""))
    if found := CELL_FRAME.match(lines[0]):
        return Frame(None, int(found[2]), found[3] or "", arrow[1], shown, int(found[1]))
    if found := FILE_FRAME.match(lines[0]) or OLD_FRAME.match(lines[0]):
        path, function = found["path"], found["function"] or ""
        line = int(found["line"]) if found["line"] else arrow[0]
        return Frame(None if KERNEL_CELL_FILE.search(path) else path, line, function, arrow[1], shown)
    return None


def cell_of(frame: Frame, code_cells: list[tuple[int, dict]]) -> tuple[int, dict] | None:
    """The notebook cell a cell frame ran in: by its execution count, else the cell whose lines are those the frame
    shows at their numbers."""
    for index, cell in code_cells:
        if frame.count is not None and cell.get("execution_count") == frame.count:
            return index, cell
    for index, cell in code_cells:
        lines = cell.source.split("\n")
        if (
            frame.count is None
            and frame.shown
            and all(number <= len(lines) and lines[number - 1].strip() == code.strip() for number, code in frame.shown)
        ):
            return index, cell
    return None


def frame_lines(traceback: list[str], notebook, sources: list[Path], root: Path) -> list[str]:
    """The frames of a kernel's traceback as one line each: the notebook's cells (with their source file and line)
    and lib's modules, the frames of other libraries folded into a count per library."""
    code_cells = [(index, cell) for index, cell in enumerate(notebook.cells) if cell.cell_type == "code"]
    lines, folded = [], []

    def unfold():
        if folded:
            lines.append(f"  ... {len(folded)} frame(s) in {', '.join(dict.fromkeys(folded))}")
            folded.clear()

    for frame in filter(None, map(parse_frame, traceback[2:-1])):  # a rule and a title first, the exception last
        if frame.path is None:
            found = cell_of(frame, code_cells)
            where = f"cell {found[0] + 1}" if found else "a cell"
            at = source_line(found[1].source, sources) if found else None
            where += f" ({at[0].relative_to(root)} line {at[1] + frame.line - 1})" if at else f" line {frame.line}"
        elif (library := library_of(frame.path, frame.function)) and not LIB_FOLDER.match(frame.path):
            folded.append(library)
            continue
        else:
            where = f"{LIB_FOLDER.sub('', frame.path)} line {frame.line}"
        unfold()
        function = re.sub(r"\(.*", "", frame.function)
        function = "" if function.startswith("<") else function  # <module>, <cell line: 0>
        lines.append(
            f"  {where}" + (f", in {function}" if function else "") + (f": {frame.code}" if frame.code else "")
        )
    unfold()
    return lines


def failure_report(notebook, sources: list[Path], root: Path) -> str:
    """What a user needs of a failed run: the failing cell's first lines, the exception, and the frames of the
    notebook (with the line of its source file among `sources`) and of lib."""
    found = failed_cell(notebook)
    if found is None:
        return "the kernel stopped without an error output"
    index, error = found
    cell_lines = notebook.cells[index].source.split("\n")
    shown = [f"    {line}" for line in cell_lines[:SOURCE_LINES]]
    shown += [f"    ... ({len(cell_lines) - SOURCE_LINES} more lines)"] if len(cell_lines) > SOURCE_LINES else []
    return "\n".join(
        [f"cell {index + 1} failed:", *shown, f"{error['ename']}: {plain(error['evalue'])}"]
        + ["where (the notebook's cells and lib; other libraries folded):"]
        + frame_lines(error["traceback"], notebook, sources, root)
    )
