"""A pushed kernel's run on Kaggle: its status, waiting for its end with its log followed, its output
downloaded."""

import json
import re
import subprocess
import threading
import time
from pathlib import Path

import build
from tools.kaggle.cli import DeliveryError, cli_command, cli_environment, kaggle
from tools.kaggle.paths import PUSH_RECORD, RUNS

FAILED_STATES = {"ERROR", "CANCEL_REQUESTED", "CANCEL_ACKNOWLEDGED"}
RUNNING_STATES = {"QUEUED", "RUNNING", "NEW_SCRIPT"}
LOG_FILE = "kaggle-log.txt"
FOLLOW_GRACE = 5.0  # seconds a kernel's log stream may take to end once Kaggle says the run ended


def kernel_ref(kernel: str, build_root: Path) -> str:
    """owner/slug of KERNEL: as given, or as last pushed from build_root/<KERNEL>/ (its push record, which outlives a
    local build into the same folder), else from the kernel-metadata.json there."""
    if "/" in kernel:
        return kernel
    if (build_root / kernel / PUSH_RECORD).is_file():
        return json.loads((build_root / kernel / PUSH_RECORD).read_text())["id"]
    path = build_root / kernel / "kernel-metadata.json"
    if not path.is_file():
        raise DeliveryError(
            f"{path}: missing; push the kernel first (make push-inference|push-train) or give owner/slug"
        )
    ref = json.loads(path.read_text())["id"]
    if ref.startswith(build.OWNER_PLACEHOLDER):
        raise DeliveryError(
            f"{path}: built without a Kaggle owner; set KAGGLE_USERNAME and rebuild, or give owner/slug"
        )
    return ref


def status(kernel: str, build_root: Path) -> str:
    """The state of the kernel's latest version on Kaggle; raise when it failed or was cancelled."""
    ref = kernel_ref(kernel, build_root)
    output = kaggle("kernels", "status", ref)
    found = re.search(r'has status "(?:KernelWorkerStatus\.)?(\w+)"', output)
    if not found:
        raise DeliveryError(f"could not read a status for {ref} in the kaggle CLI's output above")
    if found[1] in FAILED_STATES:
        reason = re.search(r'Failure message: "(.*)"', output)
        detail = reason[1] if reason else "no failure message"
        raise DeliveryError(f"{ref} ended {found[1]}: {detail}; read its log with `make output KERNEL={kernel}`")
    return found[1]


def output(kernel: str, out: Path | None, build_root: Path) -> Path:
    """Download the kernel's output files (overwriting same names) into out, default runs/<slug>; return out."""
    ref = kernel_ref(kernel, build_root)
    out = out or RUNS / ref.split("/")[1]
    downloaded = re.findall(r"Output file downloaded to (.*)", kaggle("kernels", "output", ref, "-p", str(out), "-o"))
    if not downloaded:
        raise DeliveryError(f"{ref} has no output files (its log, if any, is in {out}); check `make status`")
    slug = ref.split("/")[1]
    print(f"{len(downloaded)} output file(s) of {ref} in {out}: upload with `make upload-weights WEIGHTS={out} ...`;")
    print(f"in runs/{slug}/ they are also what local runs attach as the kernel source {slug}")
    return out


class LogFollower:
    """`kaggle kernels logs --follow` of a kernel in the background: each log line printed as it comes (after "  | ",
    between the status lines) and saved to a file."""

    def __init__(self, ref: str, path: Path):
        """Start the CLI on kernel `ref`, its log going to `path` (written afresh)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path, self.lines, self.errors = path, 0, ""
        command = cli_command("kernels", "logs", ref, "--follow")
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
            env=cli_environment(),
        )
        self.thread = threading.Thread(target=self._pump, daemon=True)
        self.thread.start()

    def _pump(self) -> None:
        """Print and save each line the CLI prints until the stream ends, then keep what it said on stderr."""
        with self.path.open("w", encoding="utf-8") as log:
            for line in self.process.stdout:
                log.write(line)
                log.flush()
                print(f"  | {line}", end="", flush=True)
                self.lines += 1
        self.errors = self.process.stderr.read().strip()
        self.process.wait()

    @property
    def ended(self) -> bool:
        """Whether the stream ended (the CLI exited and every line it printed is shown)."""
        return not self.thread.is_alive()

    def how_it_ended(self) -> str:
        """The end of the stream in words: ended, or failed with the CLI's exit status; the CLI's last error line
        (it exits 0 also when it gives up reconnecting)."""
        last = self.errors.splitlines()[-1] if self.errors else ""
        if self.process.returncode == 0:
            return f"its stream ended ({last})" if last else "its stream ended"
        code = self.process.returncode
        return f"its stream failed (`kaggle kernels logs --follow` exited with {code}: {last or 'no message'})"

    def stop(self, grace: float) -> bool:
        """Give the stream `grace` seconds to end by itself, else end the CLI; whether it ended by itself."""
        self.thread.join(grace)
        if self.ended:
            return True
        self.process.terminate()
        self.thread.join()
        return False


def log_path(kernel: str, build_root: Path) -> Path:
    """Where `wait` saves the kernel's log: beside its build, build_root/<folder, or slug of owner/slug>/kaggle-log.txt
    (the build folder is not tracked)."""
    return build_root / (kernel.split("/")[1] if "/" in kernel else kernel) / LOG_FILE


def end_follow(follower: LogFollower, kernel: str) -> None:
    """Let the log stream end (stopped after FOLLOW_GRACE seconds), then say where the log was saved."""
    if not follower.stop(FOLLOW_GRACE):
        how = f" (its stream had not ended {FOLLOW_GRACE:.0f} s after the run, so it was stopped)"
    elif follower.process.returncode != 0 or follower.errors:
        how = f" ({follower.how_it_ended()})"
    else:
        how = ""
    print(
        f"log of {kernel}: {follower.lines} line(s) saved to {follower.path}{how}; "
        f"the whole log comes with `make output KERNEL={kernel}`",
        flush=True,
    )


def wait(kernel: str, build_root: Path, every: float, out: Path | None) -> str:
    """Poll the kernel's status every `every` seconds, one progress line each, until it ends, showing its log as it
    comes from when it runs (`kaggle kernels logs --follow`, saved by `log_path`; a stream that ends or fails leaves
    the status lines); raise on a failure (with Kaggle's message); download its output into `out` when given."""
    started = time.monotonic()
    follower, fell_back = None, False
    try:
        while True:
            state = status(kernel, build_root)
            print(f"{kernel}: {state} after {time.monotonic() - started:.0f} s", flush=True)
            if state not in RUNNING_STATES:
                break
            if state == "RUNNING" and follower is None:
                print(f"log of {kernel}: follows as it comes, saved to {log_path(kernel, build_root)}", flush=True)
                follower = LogFollower(kernel_ref(kernel, build_root), log_path(kernel, build_root))
            elif follower is not None and follower.ended and not fell_back:
                print(
                    f"log of {kernel}: {follower.how_it_ended()} while it runs; status lines only from now on",
                    flush=True,
                )
                fell_back = True
            time.sleep(every)
    finally:
        if follower is not None:
            end_follow(follower, kernel)
    if state != "COMPLETE":
        raise DeliveryError(f"{kernel} ended {state}; read its log with `make output KERNEL={kernel}`")
    if out is not None:
        output(kernel, out, build_root)
    return state
