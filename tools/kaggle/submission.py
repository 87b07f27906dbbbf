"""A pushed version of the inference kernel submitted to the code competition, its submission read back, and its
public score awaited (a failure to score as its class and what to do next)."""

import csv
import io
import json
import time
from pathlib import Path

from lib.data.competition import COMPETITION
from tools.kaggle.cli import KAGGLE_CLI, CliFailed, DeliveryError, kaggle
from tools.kaggle.kernel_runs import kernel_ref
from tools.kaggle.paths import INFERENCE, PUSH_RECORD

SUBMISSION_FILE = "submission.csv"
SCORING_FAILURES = {  # Kaggle's classes of a code submission that failed to score -> what to do next
    "Notebook Timeout": (
        "the scoring rerun ran past the competition's limit (2 h on a GPU); read each stage's T4 projection to 70,000 "
        "rows in timings.json of a local scoring run (`make sample-hidden`, then `make run COMP=data/sample-hidden` "
        "writes runs/shopee-inference/timings.json; or `make timing`), cut or speed up the slowest stages, push again"
    ),
    "Notebook Threw Exception": (
        "the kernel raised on the hidden test set; read the commit run's log (the one `make wait` saved, or `make "
        "output KERNEL=shopee-inference`), run the scoring situation locally (`make sample-hidden`, `make run "
        "COMP=data/sample-hidden`), fix what fails, push again"
    ),
    "Notebook Exceeded Allowed Compute": (
        "the rerun asked for more memory or disk than Kaggle gives, or broke a competition rule on its inputs; run "
        "`make timing` (70,000 synthetic rows) and watch its peak memory, lower batch sizes or keep fewer arrays "
        "between stages, check the attached sources, push again"
    ),
    "Submission CSV Not Found": (
        "the rerun ended without submission.csv in /kaggle/working, where the kernel must write it (a fallback first, "
        "so that a failed stage still leaves one); check that `make run COMP=data/sample-hidden` writes "
        "runs/shopee-inference/submission.csv and that every input it reads is attached on Kaggle, push again"
    ),
    "Submission Scoring Error": (
        "Kaggle could not score submission.csv (columns posting_id,matches; every test posting once, with known ids "
        "only): lib.data.submission.validate_submission checks it, as the kernel and `make run "
        "COMP=data/sample-hidden` do; fix what it reports, push again"
    ),
}


def last_push(build_root: Path) -> tuple[str, int]:
    """owner/slug and version of the last push of the inference kernel, from its push record in build_root."""
    record = build_root / INFERENCE / PUSH_RECORD
    if not record.is_file():
        raise DeliveryError(f"{record}: no push recorded; run `make push-inference` or give VERSION=<n>")
    pushed = json.loads(record.read_text())
    return pushed["id"], pushed["version"]


def browser_steps(ref: str, version: int) -> str:
    """How to submit a kernel version on kaggle.com when the API may not."""
    return (
        f"submit it in the browser: open https://www.kaggle.com/code/{ref}, pick 'Version {version}' in its version "
        f"list, then 'Submit to competition' ({COMPETITION}, output file {SUBMISSION_FILE})"
    )


def listed_submission(description: str) -> dict:
    """The competition's newest submission of this account with `description` (`competitions submissions`)."""
    listing = kaggle("competitions", "submissions", COMPETITION, "--csv", "-q")
    rows = [row for row in csv.DictReader(io.StringIO(listing)) if row.get("description") == description]
    if not rows:
        raise DeliveryError(
            f"Kaggle took the submission but `kaggle competitions submissions {COMPETITION}` lists none described "
            f"{description!r}; look at https://www.kaggle.com/competitions/{COMPETITION}/submissions"
        )
    return max(rows, key=lambda row: row["date"])


def submission_fields(text: str) -> dict[str, str]:
    """The `Label: value` lines `kaggle competitions submission REF` prints, by label (a value's indented further
    lines joined to it)."""
    fields: dict[str, str] = {}
    label = ""
    for line in text.splitlines():
        if line[:1].isspace() and label:
            fields[label] += "\n" + line.strip()
        elif ":" in line:
            label, value = line.split(":", 1)
            fields[label] = value.strip()
    return fields


def next_step(error: str) -> str:
    """A scoring error as its class and what to do next (SCORING_FAILURES), or as Kaggle wrote it, and where to read
    it."""
    for failure, step in SCORING_FAILURES.items():
        if failure.lower() in error.lower():
            return f"{failure}: {step}"
    return f"{error} (see https://www.kaggle.com/competitions/{COMPETITION}/submissions)"


def await_score(ref: int, name: str, wait: float, every: float) -> str:
    """Read submission `ref` (`kaggle competitions submission REF`) every `every` seconds, a line each, until Kaggle
    has scored it, and return its public score; raise when scoring failed (its class and next step), or when it is
    still pending after `wait` seconds. `name` says what was submitted."""
    started = time.monotonic()
    while True:
        output = kaggle("competitions", "submission", str(ref), echo=False)
        fields = submission_fields(output)
        state, elapsed = fields.get("Status", ""), time.monotonic() - started
        if state not in {"PENDING", "COMPLETE", "ERROR"}:
            print(output, end="")
            raise DeliveryError(f"could not read the status of submission {ref} in the kaggle CLI's output above")
        print(f"submission {ref}: {state} after {elapsed:.0f} s", flush=True)
        if state == "COMPLETE":
            return fields.get("Public Score") or "(not published)"
        if state == "ERROR":
            error = fields.get("Error") or "no error message"
            raise DeliveryError(f"submission {ref} ({name}) failed to score: {next_step(error)}")
        if elapsed + every > wait:
            raise DeliveryError(
                f"submission {ref} ({name}) is still PENDING after {elapsed:.0f} s (WAIT={wait:g}): Kaggle is still "
                f"rerunning it; read it later with `{KAGGLE_CLI} competitions submission {ref}` or at "
                f"https://www.kaggle.com/competitions/{COMPETITION}/submissions"
            )
        time.sleep(every)


def submit(version: int | None, message: str | None, build_root: Path, wait: float | None, every: float) -> int:
    """Submit a pushed version of the inference kernel (default: the last push) to the code competition and read the
    submission back; a refusal by the API (403 to some tokens) ends in the browser steps. With `wait` (seconds), then
    wait that long at most for its score (`await_score`, a read every `every` seconds)."""
    ref, version = last_push(build_root) if version is None else (kernel_ref(INFERENCE, build_root), version)
    description = message or f"{ref} version {version}"
    args = ["-k", ref, "-v", str(version), "-f", SUBMISSION_FILE, "-m", description, "-q"]
    try:
        kaggle("competitions", "submit", COMPETITION, *args)
    except CliFailed as error:
        if not error.forbidden:
            raise
        raise DeliveryError(
            f"Kaggle's API refused the code submission of {ref} version {version} (403). Either the competition's "
            f"rules are not accepted yet (https://www.kaggle.com/competitions/{COMPETITION}/rules), or, as with "
            f"some tokens, the final submit needs the browser: {browser_steps(ref, version)}"
        ) from error
    found = listed_submission(description)
    print(
        f"submitted {ref} version {version}: submission {found['ref']}, {found['status'].split('.')[-1]} "
        f"({found['date']}); Kaggle now reruns it on the hidden test set"
    )
    if wait is not None:
        score = await_score(int(found["ref"]), f"{ref} version {version}", wait, every)
        print(f"submission {found['ref']} ({ref} version {version}) scored: public score {score}")
    return int(found["ref"])
