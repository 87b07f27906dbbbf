"""Delivery to Kaggle: the real `kaggle` CLI, driven by tools/kaggle/delivery.py and the make targets, against a local
recording server (tests/kaggle_recorder.py) with fake credentials. Nothing leaves 127.0.0.1; builds and push records
go to each test's own build folder (BUILD_DIR)."""

import base64
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pandas as pd
import pytest
import yaml

import build
from tests.conftest import edit_settings
from tests.kaggle_recorder import LOG_STREAM, Recorder, competition_zip
from tests.wheel_files import write_wheel
from tools.kaggle import datasets, preflight
from tools.kaggle.cli import DeliveryError
from tools.kaggle.kernel_runs import kernel_ref

ROOT = Path(__file__).resolve().parent.parent
USER = "fake-delivery-user"
KEY = "notarealkey0deliverytest0c0ffee"
AUTH = base64.b64encode(f"{USER}:{KEY}".encode()).decode()
TOKEN = "notarealtoken0deliverytest0beef"  # an API token: sent to Kaggle's IntrospectToken only, never shown
INFERENCE = "shopee-inference"
EXPERIMENT = "recordertest"
TRAIN_BUILD = f"shopee-train-{EXPERIMENT}"
BIG = "bigtest"  # a copy of the real exp001 (MiniLM fine-tuned for 10 epochs) pushed by the smoke pre-flight test
RANDOM = {"image": {"weights": "random"}}  # the default image backbone from random weights, said explicitly
# the small kernel's experiment, its keys in the order YAML writes them back
OVERRIDES = {"model": RANDOM, "train": {"epochs": 2, "lr": {"text": 0.001}}}
LOGS: list[str] = []  # every captured output of the tools, scanned for the credentials at the end
SENT: list[bytes] = []  # every request body the recorders received
TRAIN_SOURCE = """# %% [markdown]
# # A small training kernel for the delivery tests

# %% tags=["parameters"]
EXPERIMENT_NAME = "default"
EXPERIMENT = None

# %%
import json

from lib.data import paths

if EXPERIMENT.get("seed") == 13:
    raise RuntimeError("broken on purpose")
rows = len(open(paths.input_dir("shopee-product-matching") / "train.csv").readlines()) - 1
with open("experiment.json", "w") as file:
    json.dump({"name": EXPERIMENT_NAME, "settings": EXPERIMENT, "rows": rows}, file)
"""


def run_python(*args) -> None:
    """Run a repository script, failing the test with its output."""
    result = subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def samples(tmp_path_factory, local_datasets) -> Path:
    """A 300-row sample in both situations (commit run, scoring rerun), beside the local datasets."""
    folder = tmp_path_factory.mktemp("samples")
    run_python("-m", "tools.data.make_sample", "--out", folder / "sample", "--rows", 300, "--seed", 3)
    run_python("-m", "tools.data.make_sample", "--out", folder / "hidden", "--rows", 300, "--seed", 3, "--hidden")
    return folder


@pytest.fixture
def train_kernels(tmp_path) -> Path:
    """A kernels folder holding a small shopee-train with two experiments."""
    kernel = tmp_path / "kernels" / "shopee-train"
    (kernel / "experiments").mkdir(parents=True)
    settings = {
        "slug": "shopee-train",
        "title": "Shopee train",
        "enable_gpu": True,
        "competition_sources": ["shopee-product-matching"],
        "dataset_sources": ["all-minilm-l6-v2"],
    }
    (kernel / "kernel.yaml").write_text(yaml.safe_dump(settings))
    (kernel / "notebook.py").write_text(TRAIN_SOURCE)
    (kernel / "experiments" / f"{EXPERIMENT}.yaml").write_text(yaml.safe_dump(OVERRIDES))
    (kernel / "experiments" / "broken.yaml").write_text(yaml.safe_dump({"seed": 13, "model": RANDOM}))
    return kernel.parent


def environment(recorder: Recorder, tmp_path: Path, credentials: str = "env") -> dict[str, str]:
    """The tools' environment: the recorder as Kaggle, a private home, temp and build folder (BUILD_DIR, which the
    Makefile takes), the test credentials."""
    proxies = {"http_proxy", "https_proxy", "no_proxy", "all_proxy"}
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAGGLE_") and k.lower() not in proxies}
    for folder in ["home", "tmp", "kaggle-config"]:
        (tmp_path / folder).mkdir(exist_ok=True)
    env.update(recorder.environment(tmp_path / "kaggle-config"), HOME=str(tmp_path / "home"))
    env["TMPDIR"] = str(tmp_path / "tmp")
    env["BUILD_DIR"] = str(tmp_path / "build")
    if credentials == "env":
        env.update(KAGGLE_USERNAME=USER, KAGGLE_KEY=KEY)
    elif credentials == "file":
        config = tmp_path / "kaggle-config" / "kaggle.json"
        config.write_text(json.dumps({"username": USER, "key": KEY}))
        config.chmod(0o600)
    elif credentials == "token":  # a new user's API token, saved where the CLI reads it; no username anywhere
        (tmp_path / "home" / ".kaggle").mkdir(exist_ok=True)
        (tmp_path / "home" / ".kaggle" / "access_token").write_text(TOKEN)
    return env


def captured(result: subprocess.CompletedProcess, recorder: Recorder) -> subprocess.CompletedProcess:
    """Keep a run's output and what the recorder got for the final scan; no output may show the key."""
    LOGS.append(result.stdout + result.stderr)
    SENT.extend(request.body for request in recorder.requests)
    assert KEY not in LOGS[-1] and AUTH not in LOGS[-1] and TOKEN not in LOGS[-1]
    return result


def deliver(recorder: Recorder, env: dict, *args) -> subprocess.CompletedProcess:
    """Run `python -m tools.kaggle.delivery --build BUILD_DIR ARGS` as make does."""
    command = [sys.executable, "-m", "tools.kaggle.delivery", "--build", env["BUILD_DIR"], *map(str, args)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, cwd=ROOT, timeout=300)
    return captured(result, recorder)


def make(recorder: Recorder, env: dict, *args) -> subprocess.CompletedProcess:
    """Run a make target (the set-up step taken as done: the tests run inside the installed .venv)."""
    command = ["make", "-s", "-o", ".venv/.installed", *map(str, args)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, cwd=ROOT, timeout=300)
    return captured(result, recorder)


def pushed_text(notebook: Path) -> dict:
    """What the CLI must send for a built notebook: code outputs cleared and each cell's source joined."""
    content = json.loads(notebook.read_text())
    for cell in content["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"] = []
        cell["source"] = "".join(cell["source"])
    return content


def tree_state(folder: Path) -> dict[str, tuple[str, int]]:
    """SHA-256 and modification time of every file under folder."""
    return {
        str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def titles_only_inference(kernels: Path) -> Path:
    """A copy of the inference kernel on its default title plan, so without trained runs or kernel sources, and without
    the second stage (tests/test_inference_kernel.py runs it; here it would only add minutes to each local run)."""
    kernel = kernels / INFERENCE
    shutil.copytree(ROOT / "kernels" / INFERENCE, kernel)
    changes = {
        '"plan": "optimize-ensemble/inference_config.json"': '"plan": None',
        '"pair_stage": True': '"pair_stage": False',
    }
    edit_settings(kernel / "notebook.py", changes)
    settings = yaml.safe_load((kernel / "kernel.yaml").read_text())
    (kernel / "kernel.yaml").write_text(yaml.safe_dump({**settings, "kernel_sources": []}))
    return kernels


def test_push_inference_runs_both_situations_then_sends_the_built_notebook(samples, tmp_path):
    kernels = titles_only_inference(tmp_path / "kernels")
    with Recorder() as recorder:
        env = environment(recorder, tmp_path)
        runs = tmp_path / "runs"
        args = ["--kernels", kernels, "--sample", samples / "sample", "--hidden", samples / "hidden", "--runs", runs]
        result = deliver(recorder, env, "push-inference", *args)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"on {samples / 'sample'};" in result.stdout and f"on {samples / 'hidden'};" in result.stdout
    assert "run locally in 2 situation(s)" in result.stdout
    assert re.search(
        r"time budget: \d+\.\d\d h projected on a T4 for the hidden rerun, (within|WARNING: over) the 2 h",
        result.stdout,
    )
    hidden_test = pd.read_csv(samples / "hidden" / "test.csv")
    submission = pd.read_csv(runs / INFERENCE / "submission.csv")
    assert len(hidden_test) > 3 and sorted(submission.posting_id) == sorted(hidden_test.posting_id)

    assert recorder.rpcs() == ["GetAcceleratorQuotaStatistics", "SaveKernel"]  # the GPU hours left, then the push
    [save] = recorder.calls("SaveKernel")
    assert save["slug"] == f"{USER}/{INFERENCE}"
    assert save["enableInternet"] is False and save["enableGpu"] is True and save["isPrivate"] is True
    assert save["machineShape"] == "NvidiaTeslaT4"
    assert save["datasetDataSources"] == [f"{USER}/all-minilm-l6-v2", f"{USER}/shopee-wheels"]
    assert save["competitionDataSources"] == ["shopee-product-matching"]
    assert save["language"] == "python" and save["kernelType"] == "notebook"
    assert json.loads(save["text"]) == pushed_text(tmp_path / "build" / INFERENCE / f"{INFERENCE}.ipynb")
    record = json.loads((tmp_path / "build" / INFERENCE / "push.json").read_text())
    assert record == {"id": f"{USER}/{INFERENCE}", "version": 1}


def test_an_api_token_alone_pushes_as_the_user_it_belongs_to(tmp_path):
    with Recorder(token_user=USER) as recorder:
        result = deliver(recorder, environment(recorder, tmp_path, credentials="token"), "push-inference", "--force")
    assert result.returncode == 0, result.stderr
    assert recorder.rpcs()[0] == "IntrospectToken" and recorder.calls("IntrospectToken")[0]["token"] == TOKEN
    [save] = recorder.calls("SaveKernel")
    assert save["slug"] == f"{USER}/{INFERENCE}"
    assert json.loads((tmp_path / "build" / INFERENCE / "push.json").read_text())["id"] == f"{USER}/{INFERENCE}"


def test_push_optimize_sends_the_optimiser_with_the_runs_attached(tmp_path):
    runs = ["shopee-train-exp001", "shopee-train-diary-b3-mbert"]
    with Recorder() as recorder:
        result = make(recorder, environment(recorder, tmp_path), "push-optimize", f"RUNS={' '.join(runs)}")
    assert result.returncode == 0, result.stderr
    assert recorder.rpcs() == ["SaveKernel"], "a CPU kernel: no GPU quota to check"
    [save] = recorder.calls("SaveKernel")
    assert save["slug"] == f"{USER}/optimize-ensemble" and not save.get("enableGpu")
    assert save["kernelDataSources"] == [f"{USER}/{run}" for run in runs]
    first_code = next(cell for cell in json.loads(save["text"])["cells"] if cell["cell_type"] == "code")
    assert "".join(first_code["source"]).startswith(f"RUNS = {runs!r}")


def test_submit_sends_the_pushed_version_to_the_competition(tmp_path):
    with Recorder() as recorder:
        env = environment(recorder, tmp_path)
        assert deliver(recorder, env, "push-inference", "--force").returncode == 0
        result = make(recorder, env, "submit")
        again = make(recorder, env, "submit", "VERSION=7", "MESSAGE=thresholds from CV")
    assert result.returncode == 0 and again.returncode == 0, result.stderr + again.stderr
    assert "submission 1001" in result.stdout
    first, second = recorder.calls("CreateCodeSubmission")
    assert first == {
        "competitionName": "shopee-product-matching",
        "kernelOwner": USER,
        "kernelSlug": INFERENCE,
        "kernelVersion": 1,
        "fileName": "submission.csv",
        "submissionDescription": f"{USER}/{INFERENCE} version 1",
    }
    assert second["kernelVersion"] == 7 and second["submissionDescription"] == "thresholds from CV"
    assert recorder.calls("ListSubmissions"), "each submission is read back"
    assert "GetSubmission" not in recorder.rpcs(), "without WAIT, no waiting for the score"


def test_submit_with_wait_reads_the_submission_until_it_is_scored_then_prints_its_public_score(tmp_path):
    scoring = [{"status": "PENDING"}, {"status": "PENDING"}, {"status": "COMPLETE", "publicScore": "0.7312"}]
    push_record(tmp_path / "build", version=3)
    with Recorder(scoring=scoring) as recorder:
        result = make(recorder, environment(recorder, tmp_path), "submit", "WAIT=60", "EVERY=0.1")
    assert result.returncode == 0, result.stderr
    assert recorder.calls("CreateCodeSubmission")[0]["kernelVersion"] == 3
    assert recorder.calls("GetSubmission") == [{"ref": 1001}] * len(scoring), "the ref listed for the submission"
    read = re.findall(r"^submission 1001: (\w+) after \d+ s$", result.stdout, re.M)
    assert read == [answer["status"] for answer in scoring]
    score = f"submission 1001 ({USER}/{INFERENCE} version 3) scored: public score {scoring[-1]['publicScore']}"
    assert result.stdout.splitlines()[-1] == score


NEXT_STEPS = {  # each scoring failure class -> words of its own next step only
    "Notebook Timeout": "cut or speed up the slowest stages",
    "Notebook Threw Exception": "read the commit run's log",
    "Notebook Exceeded Allowed Compute": "watch its peak memory",
    "Submission CSV Not Found": "/kaggle/working",
    "Submission Scoring Error": "validate_submission",
}


@pytest.mark.parametrize("failure", NEXT_STEPS)
def test_submit_with_wait_names_the_failure_class_and_its_next_step(tmp_path, failure):
    push_record(tmp_path / "build")
    with Recorder(scoring=[{"status": "PENDING"}, {"status": "ERROR", "errorDescription": failure}]) as recorder:
        result = make(recorder, environment(recorder, tmp_path), "submit", "WAIT=60", "EVERY=0.1")
    assert result.returncode != 0
    assert len(recorder.calls("GetSubmission")) == 2
    assert f"submission 1001 ({USER}/{INFERENCE} version 1) failed to score: {failure}: " in result.stderr
    assert NEXT_STEPS[failure] in result.stderr
    assert not [step for other, step in NEXT_STEPS.items() if other != failure and step in result.stderr]


def test_submit_with_wait_fails_when_the_submission_is_still_pending_after_wait(tmp_path):
    push_record(tmp_path / "build")
    with Recorder() as recorder:
        result = make(recorder, environment(recorder, tmp_path), "submit", "WAIT=0.1", "EVERY=1")
    assert result.returncode != 0
    assert recorder.calls("GetSubmission") == [{"ref": 1001}], "one read: the next would come after WAIT"
    assert re.search(r"submission 1001 \(.*version 1\) is still PENDING after \d+ s \(WAIT=0.1\)", result.stderr)
    assert "competitions submission 1001`" in result.stderr


def test_a_submission_accepted_silently_is_read_back_and_a_refused_one_gives_the_browser_steps(tmp_path):
    # today's API answers an accepted code submission without a ref (the CLI then prints nothing), and some tokens
    # get 403 (docs/delivery.md)
    with Recorder(replies={"CreateCodeSubmission": {"ref": 0}}) as recorder:
        env = environment(recorder, tmp_path)
        assert deliver(recorder, env, "push-inference", "--force").returncode == 0
        accepted = make(recorder, env, "submit")
    assert accepted.returncode == 0, accepted.stderr
    assert "Submission ref" not in accepted.stdout
    assert f"submitted {USER}/{INFERENCE} version 1: submission 1001, PENDING" in accepted.stdout
    with Recorder(failures={"CreateCodeSubmission": 403}) as recorder:
        (tmp_path / "refused").mkdir()
        env = environment(recorder, tmp_path / "refused")
        assert deliver(recorder, env, "push-inference", "--force").returncode == 0
        refused = make(recorder, env, "submit")
    assert refused.returncode != 0 and recorder.rpcs()[-1] == "CreateCodeSubmission"
    assert "refused the code submission" in refused.stderr
    assert f"open https://www.kaggle.com/code/{USER}/{INFERENCE}, pick 'Version 1'" in refused.stderr


def broken_inference(tmp_path: Path, change: str) -> Path:
    """A copy of kernels/shopee-inference with one thing wrong; returns its kernels folder."""
    kernel = tmp_path / "kernels" / INFERENCE
    shutil.copytree(ROOT / "kernels" / INFERENCE, kernel)
    settings = yaml.safe_load((kernel / "kernel.yaml").read_text())
    if change == "gpu":
        settings["enable_gpu"] = False
    elif change == "p100":
        settings["machine_shape"] = "NvidiaTeslaP100"
    elif change == "dataset":
        settings["dataset_sources"].append("missing-weights")
    elif change == "competition":
        settings["competition_sources"] = []
    else:
        source = (kernel / "notebook.py").read_text()
        (kernel / "notebook.py").write_text(source + "\n# %%\n!pip install timm\n")
    (kernel / "kernel.yaml").write_text(yaml.safe_dump(settings))
    return kernel.parent


@pytest.mark.parametrize(
    "change, reason",
    [
        ("gpu", "GPU is off"),
        (
            "p100",
            "machine_shape NvidiaTeslaP100 is not a T4 (NvidiaTeslaT4): torch 2.10's cu128 wheels in Kaggle's image "
            "support sm_70 and newer, so on a P100 (sm_60) the first CUDA call fails with "
            '"no kernel image is available"',
        ),
        ("dataset", f"dataset {USER}/missing-weights is not described"),
        ("competition", "add shopee-product-matching to competition_sources"),
        ("offline", "`pip install` without --no-index"),
    ],
)
def test_preflight_failure_sends_nothing_even_when_forced(tmp_path, change, reason):
    kernels = broken_inference(tmp_path, change)
    with Recorder() as recorder:
        env = environment(recorder, tmp_path)
        results = [
            deliver(recorder, env, "push-inference", "--kernels", kernels, *force) for force in [[], ["--force"]]
        ]
    for result in results:
        assert result.returncode == 1
        assert reason in result.stderr
    assert recorder.requests == []
    assert not (tmp_path / "build").exists(), "a refused kernel is not built"


def test_local_runs_are_checked_for_their_situation_and_submission(tmp_path):
    comp, out = tmp_path / "comp", tmp_path / "out"
    comp.mkdir()
    out.mkdir()
    pd.DataFrame({"posting_id": ["a", "b", "c"]}).to_csv(comp / "test.csv", index=False)
    preflight.check_situation(comp, scoring=False)
    with pytest.raises(preflight.PreflightError, match="the scoring rerun needs the hidden test set"):
        preflight.check_situation(comp, scoring=True)
    with pytest.raises(preflight.PreflightError, match="wrote no submission.csv"):
        preflight.check_submission(out, comp)
    rows = {"posting_id": ["a", "b", "c"], "matches": ["a b", "b a", "c z"]}
    pd.DataFrame(rows).to_csv(out / "submission.csv", index=False)
    with pytest.raises(preflight.PreflightError, match="line 4, posting c matches an unknown posting id"):
        preflight.check_submission(out, comp)
    pd.DataFrame({"posting_id": ["a", "b"], "matches": ["a", "b"]}).to_csv(out / "submission.csv", index=False)
    with pytest.raises(preflight.PreflightError, match="1 test postings have no row"):
        preflight.check_submission(out, comp)


@pytest.mark.parametrize(
    "replies, failures, message",
    [
        ({"SaveKernel": {"error": "Notebook exceeds the size limit"}}, {}, "refused the push"),
        ({"SaveKernel": {"error": "Maximum batch GPU session count of 2 reached"}}, {}, "count of 2 reached"),
        ({"SaveKernel": {"error": "Maximum weekly GPU quota of 30.00 hours reached"}}, {}, "30.00 hours reached"),
        ({"SaveKernel": {"invalidDatasetSources": [f"{USER}/all-minilm-l6-v2"]}}, {}, "dropped dataset sources"),
        ({}, {"SaveKernel": 403}, "exited with 1"),
    ],
)
def test_server_refusal_fails_the_push_target(tmp_path, replies, failures, message):
    with Recorder(replies=replies, failures=failures) as recorder:
        result = make(recorder, environment(recorder, tmp_path), "push-inference", "FORCE=1")
    assert result.returncode != 0
    assert message in result.stderr
    assert recorder.rpcs() == ["GetAcceleratorQuotaStatistics", "SaveKernel"]


@pytest.mark.parametrize(
    "command",
    [
        ["push-inference", "--force"],
        ["push-train", EXPERIMENT, "--force"],
        ["upload-weights", "all-minilm-l6-v2"],
        ["status", f"{USER}/{INFERENCE}"],
        ["output", f"{USER}/{INFERENCE}"],
        ["submit", "--version", "1"],
    ],
)
def test_missing_credentials_give_one_line_and_send_nothing(tmp_path, command):
    with Recorder() as recorder:
        result = deliver(recorder, environment(recorder, tmp_path, credentials="none"), *command)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert (
        "set KAGGLE_API_TOKEN" in result.stderr
        and "set KAGGLE_USERNAME and KAGGLE_KEY, or save kaggle.json" in result.stderr
    )
    assert recorder.requests == []


def test_a_push_without_a_known_owner_is_refused_naming_the_kernel_and_the_fix(tmp_path):
    with Recorder() as recorder:
        env = environment(recorder, tmp_path, credentials="none")
        (tmp_path / "kaggle-config" / "kaggle.json").write_text(json.dumps({"key": KEY}))  # a key, no username
        result = make(recorder, env, "push-optimize", "RUNS=shopee-train-exp001")
    assert result.returncode != 0
    owner = f"optimize-ensemble: no Kaggle owner known ({build.OWNER_PLACEHOLDER}/optimize-ensemble)"
    assert f"{owner}; set KAGGLE_USERNAME, or 'owner' in its kernel.yaml" in result.stderr
    assert recorder.requests == []


@pytest.mark.parametrize("state, code", [("COMPLETE", 0), ("RUNNING", 0), ("ERROR", 2)])
def test_status_target_fails_on_error(tmp_path, state, code):
    with Recorder(kernel_status=state) as recorder:
        result = make(recorder, environment(recorder, tmp_path), "status", f"KERNEL={USER}/{INFERENCE}")
    assert result.returncode == code
    assert recorder.calls("GetKernelSessionStatus") == [{"userName": USER, "kernelSlug": INFERENCE}]
    if state == "ERROR":
        assert f"{USER}/{INFERENCE} ended ERROR: Notebook Threw Exception" in result.stderr
    else:
        assert f"{USER}/{INFERENCE}: {state}" in result.stdout


def test_wait_polls_until_the_kernel_ends_and_downloads_its_output(tmp_path):
    states = ["QUEUED", "RUNNING", "RUNNING", "COMPLETE"]
    with Recorder(kernel_status=states, outputs={"submission.csv": b"posting_id,matches\n"}) as recorder:
        env = environment(recorder, tmp_path)
        result = make(recorder, env, "wait", f"KERNEL={USER}/{INFERENCE}", "EVERY=0.1", f"OUT={tmp_path / 'out'}")
    assert result.returncode == 0, result.stderr
    assert len(recorder.calls("GetKernelSessionStatus")) == 4
    lines = [line for line in result.stdout.splitlines() if line.startswith(f"{USER}/{INFERENCE}: ")]
    assert [line.split(": ")[1].split()[0] for line in lines] == states
    assert (tmp_path / "out" / "submission.csv").read_bytes() == b"posting_id,matches\n"


def test_wait_fails_with_kaggles_message_when_the_kernel_fails(tmp_path):
    traceback = ["Traceback (most recent call last):", "RuntimeError: broken on purpose"]
    with Recorder(kernel_status=["RUNNING", "ERROR"], log_lines=traceback) as recorder:
        result = make(recorder, environment(recorder, tmp_path), "wait", f"KERNEL={USER}/{INFERENCE}", "EVERY=0.1")
    assert result.returncode != 0 and "ended ERROR: Notebook Threw Exception" in result.stderr
    assert recorder.rpcs() == ["GetKernelSessionStatus"] * 2
    assert [f"  | {line}" for line in traceback] == log_shown(result.stdout), "the log is shown up to the failure"
    assert (tmp_path / "build" / INFERENCE / "kaggle-log.txt").read_text() == "".join(f"{x}\n" for x in traceback)


def log_shown(stdout: str) -> list[str]:
    """The kernel log lines `wait` printed, in order."""
    return [line for line in stdout.splitlines() if line.startswith("  | ")]


def push_record(build_root: Path, version: int = 1) -> None:
    """The push record of the inference kernel in build_root, as `make push-inference` writes it."""
    (build_root / INFERENCE).mkdir(parents=True, exist_ok=True)
    (build_root / INFERENCE / "push.json").write_text(json.dumps({"id": f"{USER}/{INFERENCE}", "version": version}))


def test_wait_shows_the_kernels_log_as_it_runs_between_the_status_lines_and_saves_it_beside_the_build(tmp_path):
    states = ["QUEUED", "RUNNING", "RUNNING", "RUNNING", "COMPLETE"]
    log = ["shopee-inference: 3 test postings", "stage tfidf: 0.4 s", "wrote submission.csv (3 rows)"]
    push_record(tmp_path / "build")
    with Recorder(kernel_status=states, log_lines=log) as recorder:
        result = make(recorder, environment(recorder, tmp_path), "wait", f"KERNEL={INFERENCE}", "EVERY=0.2")
    assert result.returncode == 0, result.stderr
    saved = tmp_path / "build" / INFERENCE / "kaggle-log.txt"
    assert saved.read_text() == "".join(f"{line}\n" for line in log)
    lines = result.stdout.splitlines()
    status_lines = [line for line in lines if re.fullmatch(rf"{INFERENCE}: [A-Z_]+ after \d+ s", line)]
    assert [line.split()[1] for line in status_lines] == states
    assert log_shown(result.stdout) == [f"  | {line}" for line in log]
    first_log = lines.index(f"  | {log[0]}")
    assert lines.index(f"log of {INFERENCE}: follows as it comes, saved to {saved}") < first_log
    assert lines.index(status_lines[1]) < first_log, "the log comes once the kernel runs"
    summary = f"log of {INFERENCE}: {len(log)} line(s) saved to {saved}; the whole log comes with `make output"
    assert lines[-1].startswith(summary) and lines.index(f"  | {log[-1]}") < len(lines) - 1
    [stream] = [request for request in recorder.requests if request.path.startswith(LOG_STREAM)]
    assert stream.verb == "GET" and stream.path == f"{LOG_STREAM}{USER}/{INFERENCE}"
    assert "text/event-stream" in stream.headers["Accept"]


@pytest.mark.parametrize(
    "stream, states, told",
    [
        ({"failures": {LOG_STREAM: 404}}, ["RUNNING"] * 4, "its stream failed (`kaggle kernels logs --follow` "),
        ({"log_lines": ["one line"]}, ["RUNNING"] * 4, "its stream ended while it runs; status lines only"),
        ({"log_lines": ["one line"], "log_stream_ends": False}, ["RUNNING"], "its stream had not ended 5 s after"),
    ],
)
def test_a_log_stream_that_fails_ends_early_or_never_ends_leaves_the_status_lines(tmp_path, stream, states, told):
    with Recorder(kernel_status=[*states, "COMPLETE"], **stream) as recorder:
        result = make(recorder, environment(recorder, tmp_path), "wait", f"KERNEL={USER}/{INFERENCE}", "EVERY=0.2")
    assert result.returncode == 0, result.stderr
    assert told in result.stdout
    assert re.search(rf"^{USER}/{INFERENCE}: COMPLETE after \d+ s$", result.stdout, re.M)
    shown = len(stream.get("log_lines", []))
    saved = tmp_path / "build" / INFERENCE / "kaggle-log.txt"
    assert f"log of {USER}/{INFERENCE}: {shown} line(s) saved to {saved}" in result.stdout
    assert len(recorder.calls("GetKernelSessionStatus")) == len(states) + 1


@pytest.mark.parametrize("used, code", [(12.5, 0), (30.0, 2)])
def test_quota_prints_the_gpu_hours_left_and_refuses_a_push_with_none(tmp_path, used, code):
    with Recorder(gpu_hours=(used, 30.0)) as recorder:
        env = environment(recorder, tmp_path)
        result = make(recorder, env, "quota")
        pushed = deliver(recorder, env, "push-inference", "--force")
    assert result.returncode == code
    if code == 0:
        assert "GPU quota: 17.50h left of 30.00h this week (used 12.50h)" in result.stdout
        assert pushed.returncode == 0 and "GPU quota: 17.50h left" in pushed.stdout
        assert recorder.rpcs()[-2:] == ["GetAcceleratorQuotaStatistics", "SaveKernel"]
    else:
        assert "a GPU kernel would not start; wait for the renewal" in result.stderr
        assert pushed.returncode == 1 and "SaveKernel" not in recorder.rpcs()


def test_competition_data_is_downloaded_unzipped_and_checked(samples, tmp_path):
    out = tmp_path / "competition"
    with Recorder(competition_zip=competition_zip(samples / "sample")) as recorder:
        result = make(recorder, environment(recorder, tmp_path), "competition-data", f"OUT={out}")
    assert result.returncode == 0, result.stderr
    assert recorder.calls("DownloadDataFiles") == [{"competitionName": "shopee-product-matching"}]
    for name in ["train.csv", "test.csv", "sample_submission.csv"]:
        assert (out / name).read_bytes() == (samples / "sample" / name).read_bytes()
    assert "every image present" in result.stdout and f"use it as COMP={out}" in result.stdout


def test_competition_data_names_the_rules_on_a_refusal_and_a_missing_image_by_its_line(samples, tmp_path):
    with Recorder(competition_zip=b"", failures={"DownloadDataFiles": 403}) as recorder:
        refused = make(recorder, environment(recorder, tmp_path), "competition-data", f"OUT={tmp_path / 'a'}")
    assert refused.returncode != 0
    assert (
        "accept its rules first at https://www.kaggle.com/competitions/shopee-product-matching/rules" in refused.stderr
    )
    first_image = pd.read_csv(samples / "sample" / "train.csv").image[0]
    with Recorder(competition_zip=competition_zip(samples / "sample", f"train_images/{first_image}")) as recorder:
        broken = make(recorder, environment(recorder, tmp_path), "competition-data", f"OUT={tmp_path / 'b'}")
    assert broken.returncode != 0
    assert (
        f"train.csv: 1 image(s) missing from {tmp_path / 'b' / 'train_images'}, the first {first_image} (line 2)"
        in broken.stderr
    )


def test_kernel_is_named_by_its_push_record_its_build_or_owner_and_slug(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "kernel-metadata.json").write_text(json.dumps({"id": f"{USER}/my-kernel"}))
    assert kernel_ref("mine", tmp_path) == f"{USER}/my-kernel"
    assert kernel_ref("someone/their-kernel", tmp_path) == "someone/their-kernel"
    with pytest.raises(DeliveryError, match="missing; push the kernel first"):
        kernel_ref("never-built", tmp_path)
    (tmp_path / "mine" / "kernel-metadata.json").write_text(json.dumps({"id": "set-KAGGLE_USERNAME/my-kernel"}))
    with pytest.raises(DeliveryError, match="built without a Kaggle owner"):
        kernel_ref("mine", tmp_path)
    (tmp_path / "mine" / "push.json").write_text(json.dumps({"id": f"{USER}/my-kernel", "version": 3}))
    assert kernel_ref("mine", tmp_path) == f"{USER}/my-kernel", "a local build after the push changes nothing"


def test_output_downloads_kernel_files_into_a_local_folder(tmp_path):
    files = {"model_fold0.pt": b"\x00weights\x01", "cv_scores.json": b'{"f1": 0.7}'}
    out = tmp_path / "trained"
    with Recorder(outputs=files) as recorder:
        env = environment(recorder, tmp_path)
        result = make(recorder, env, "output", f"KERNEL={USER}/{TRAIN_BUILD}", f"OUT={out}")
    assert result.returncode == 0, result.stderr
    assert {name: (out / name).read_bytes() for name in files} == files
    assert (out / f"{TRAIN_BUILD}.log").is_file()
    assert recorder.calls("ListKernelSessionOutput")[0]["kernelSlug"] == TRAIN_BUILD
    with Recorder() as recorder:
        empty = make(recorder, environment(recorder, tmp_path), "output", f"KERNEL={USER}/{TRAIN_BUILD}", f"OUT={out}")
    assert empty.returncode != 0 and "has no output files" in empty.stderr


def weights_folder(tmp_path: Path) -> Path:
    """Local weights: a top-level file, a sub-folder with a nested folder, and a stray dataset-metadata.json."""
    folder = tmp_path / "weights"
    (folder / "fold0" / "extra").mkdir(parents=True)
    (folder / "config.json").write_text('{"model": "tiny"}')
    (folder / "fold0" / "model.safetensors").write_bytes(bytes(range(256)) * 3)
    (folder / "fold0" / "extra" / "notes.txt").write_text("fold 0")
    (folder / "dataset-metadata.json").write_text('{"id": "someone/else"}')
    return folder


def uploaded(recorder: Recorder) -> dict[str, bytes]:
    """Every file the recorder received, by path inside the dataset: zipped folders unpacked."""
    names = [call["name"] for call in recorder.calls("StartBlobUpload")]
    received = {}
    for number, name in enumerate(names, start=1):
        blob = recorder.blobs[f"blob-{number}"]
        if name.endswith(".zip"):
            with zipfile.ZipFile(io.BytesIO(blob)) as archive:
                folder = name.removesuffix(".zip")
                received |= {f"{folder}/{n}": archive.read(n) for n in archive.namelist() if not n.endswith("/")}
        else:
            received[name] = blob
    return received


def test_upload_weights_creates_then_versions_the_dataset_leaving_local_files_alone(tmp_path):
    folder = weights_folder(tmp_path)
    local = tree_state(folder)
    tracked = (ROOT / "datasets-meta" / "all-minilm-l6-v2" / "dataset-metadata.json").read_bytes()
    expected = {k: (folder / k).read_bytes() for k in local if k != "dataset-metadata.json"}
    ref = f"{USER}/all-minilm-l6-v2"
    with Recorder() as recorder:
        args = ["upload-weights", "DATASET=all-minilm-l6-v2", f"WEIGHTS={folder}"]
        created = make(recorder, environment(recorder, tmp_path, credentials="file"), *args)
    assert created.returncode == 0, created.stdout + created.stderr
    assert recorder.rpcs() == ["GetDatasetStatus", "StartBlobUpload", "StartBlobUpload", "CreateDataset"]
    assert uploaded(recorder) == expected
    [create] = recorder.calls("CreateDataset")
    assert (create["ownerSlug"], create["slug"], create["licenseName"]) == (USER, "all-minilm-l6-v2", "apache-2.0")
    assert create["title"] == "all-MiniLM-L6-v2 (transformers folder)"
    assert create["files"] == [{"token": "blob-1"}, {"token": "blob-2"}]
    assert all(r.headers.get("Authorization") == "<redacted>" for r in recorder.requests if r.rpc)

    with Recorder(existing_datasets={ref}) as recorder:
        env = environment(recorder, tmp_path)
        versioned = make(
            recorder, env, "upload-weights", "DATASET=all-minilm-l6-v2", f"WEIGHTS={folder}", "MESSAGE=fold 0"
        )
    assert versioned.returncode == 0, versioned.stdout + versioned.stderr
    assert recorder.rpcs() == ["GetDatasetStatus", "StartBlobUpload", "StartBlobUpload", "CreateDatasetVersion"]
    assert uploaded(recorder) == expected
    [version] = recorder.calls("CreateDatasetVersion")
    assert (version["ownerSlug"], version["datasetSlug"]) == (USER, "all-minilm-l6-v2")
    assert version["body"]["versionNotes"] == "fold 0" and len(version["body"]["files"]) == 2

    assert tree_state(folder) == local
    assert (ROOT / "datasets-meta" / "all-minilm-l6-v2" / "dataset-metadata.json").read_bytes() == tracked
    assert not list((tmp_path / "tmp").glob("kaggle-upload-*"))


def test_a_training_runs_output_uploads_as_its_own_weights_dataset(tmp_path):
    folder = weights_folder(tmp_path)
    with Recorder() as recorder:
        args = ["upload-weights", "DATASET=shopee-train-demo", f"WEIGHTS={folder}"]
        created = make(recorder, environment(recorder, tmp_path), *args)
    assert created.returncode == 0, created.stdout + created.stderr
    [create] = recorder.calls("CreateDataset")
    assert (create["ownerSlug"], create["slug"], create["title"]) == (USER, "shopee-train-demo", "Shopee train demo")
    assert "dataset-metadata.json" not in uploaded(recorder)
    assert not (ROOT / "datasets-meta" / "shopee-train-demo").exists()


@pytest.mark.parametrize(
    "replies, failures, message",
    [
        ({"CreateDataset": {"status": "error", "error": "Quota exceeded"}}, {}, "Quota exceeded"),
        ({}, {"CreateDataset": 403}, "exited with 1"),
    ],
)
def test_refused_dataset_fails_the_upload_target(tmp_path, replies, failures, message):
    folder = weights_folder(tmp_path)
    with Recorder(replies=replies, failures=failures) as recorder:
        args = ["upload-weights", "DATASET=all-minilm-l6-v2", f"WEIGHTS={folder}"]
        result = make(recorder, environment(recorder, tmp_path), *args)
    assert result.returncode != 0
    assert message in result.stderr


def test_unknown_dataset_names_the_known_ones(tmp_path):
    with Recorder() as recorder:
        result = make(recorder, environment(recorder, tmp_path), "upload-weights", "DATASET=nope")
    assert result.returncode != 0
    assert "'all-minilm-l6-v2'" in result.stderr and "'wheels'" in result.stderr
    assert recorder.requests == []


def test_push_train_refuses_without_the_training_kernel_or_a_known_experiment(tmp_path, train_kernels):
    with Recorder() as recorder:
        env = environment(recorder, tmp_path)
        missing = deliver(recorder, env, "push-train", EXPERIMENT, "--kernels", tmp_path / "empty", "--force")
        unknown = deliver(recorder, env, "push-train", "nope", "--kernels", train_kernels, "--force")
        unnamed = deliver(recorder, env, "push-train", "--kernels", train_kernels, "--force")
    assert missing.returncode == 1 and "shopee-train yet" in missing.stderr
    for result in [unknown, unnamed]:
        assert result.returncode == 1
        assert f"['broken', '{EXPERIMENT}']" in result.stderr
    assert recorder.requests == []


def test_push_train_builds_one_kernel_per_experiment(samples, tmp_path, train_kernels):
    runs = tmp_path / "runs"
    with Recorder() as recorder:
        env = environment(recorder, tmp_path)
        args = ["--kernels", train_kernels, "--sample", samples / "sample", "--runs", runs]
        broken = deliver(recorder, env, "push-train", "broken", *args)
        assert recorder.requests == []
        result = deliver(recorder, env, "push-train", EXPERIMENT, *args)
    assert (
        broken.returncode == 1 and f"local run of {tmp_path / 'build' / 'shopee-train-broken-smoke'}" in broken.stderr
    )
    assert "broken on purpose" in broken.stdout + broken.stderr
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    ran = json.loads((runs / f"{TRAIN_BUILD}-smoke" / "experiment.json").read_text())
    smoke = {"train": {"epochs": 1, "lr": {"text": 0.001}, "workers": 0}, "model": RANDOM, "image": {"sizes": [64]}}
    assert ran == {"name": EXPERIMENT, "settings": smoke, "rows": smoke_rows(samples / "sample" / "train.csv")}
    [save] = recorder.calls("SaveKernel")
    assert save["slug"] == f"{USER}/{TRAIN_BUILD}" and save["newTitle"] == f"Shopee train {EXPERIMENT}"
    assert save["enableInternet"] is False and save["competitionDataSources"] == ["shopee-product-matching"]
    assert save["enableGpu"] is True and save["machineShape"] == "NvidiaTeslaT4"
    assert json.loads(save["text"]) == pushed_text(tmp_path / "build" / TRAIN_BUILD / f"{TRAIN_BUILD}.ipynb")
    assert f"EXPERIMENT = {OVERRIDES!r}" in save["text"]


def smoke_rows(path: Path) -> int:
    """Rows of the first whole label groups (in order of first row) of a train.csv that reach preflight.SMOKE_ROWS."""
    sizes: dict[str, int] = {}
    for group in pd.read_csv(path, dtype=str).label_group:
        sizes[group] = sizes.get(group, 0) + 1
    total = 0
    for size in sizes.values():
        total += size
        if total >= preflight.SMOKE_ROWS:
            break
    return total


def test_wheels_fetches_only_the_listed_wheels_for_kaggles_python_and_platform(tmp_path, monkeypatch):
    house = tmp_path / "wheelhouse"
    house.mkdir()
    linux = "manylinux_2_17_x86_64.manylinux2014_x86_64"
    for version, tag in [
        ("1.0", f"cp312-cp312-{linux}"),
        ("1.0", f"cp311-cp311-{linux}"),
        ("2.0", f"cp312-cp312-{linux}"),
    ]:
        write_wheel(house, "tinyplat", version, tag)
    write_wheel(house, "tinyplat", "1.0", "cp312-cp312-macosx_11_0_arm64")
    write_wheel(house, "tinypure", "0.1", "py3-none-any", requires="Requires-Dist: tinymissing\n")
    (house / "tinysrc-1.0.tar.gz").write_bytes(b"not a wheel")
    wanted = tmp_path / "wheels.txt"
    wanted.write_text("# test list\ntinyplat==1.0\ntinypure  # pure Python\n")
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(house))
    monkeypatch.setattr(datasets.wheels_list, "WHEELS_LIST", wanted)
    monkeypatch.setattr(datasets, "LOCAL_DATASETS", tmp_path / "datasets")
    target = tmp_path / "datasets" / "shopee-wheels"
    target.mkdir(parents=True)
    (target / "stale-0.1-py3-none-any.whl").write_bytes(b"old")

    found = datasets.wheels()
    assert datasets.wheels_list.image_python() == "3.12"  # tools/env/kaggle_image.txt
    assert [path.name for path in found] == [f"tinyplat-1.0-cp312-cp312-{linux}.whl", "tinypure-0.1-py3-none-any.whl"]
    assert sorted(path.name for path in target.iterdir()) == sorted([p.name for p in found] + ["requirements.txt"])
    assert (target / "requirements.txt").read_text() == wanted.read_text()
    wanted.write_text("tinysrc==1.0\n")
    with pytest.raises(DeliveryError, match="pip found no wheel for Python 3.12"):
        datasets.wheels()
    metadata = json.loads((ROOT / "datasets-meta" / "wheels" / "dataset-metadata.json").read_text())
    slug = metadata["id"].split("/")[1]
    assert 6 <= len(slug) <= 50 and 6 <= len(metadata["title"]) <= 50 and len(metadata["licenses"]) == 1
    assert 20 <= len(metadata["subtitle"]) <= 80 and slug == target.name


def test_no_credentials_in_builds_runs_logs_requests_or_tracked_files(tmp_path):
    weights = weights_folder(tmp_path)
    with Recorder() as recorder:
        env = environment(recorder, tmp_path)
        pushed = deliver(recorder, env, "push-inference", "--force")
        upload = deliver(recorder, env, "upload-weights", "all-minilm-l6-v2", "--folder", weights)
    assert pushed.returncode == 0 and upload.returncode == 0
    listed = subprocess.run(["git", "ls-files"], capture_output=True, text=True, cwd=ROOT).stdout.split()
    tracked = [ROOT / name for name in listed if (ROOT / name).is_file() and ROOT / name != Path(__file__)]
    built = [path for path in (tmp_path / "build").rglob("*") if path.is_file()]
    runs = [path for path in tmp_path.parent.rglob("*") if path.is_file() and "runs" in path.parts]
    texts = [path.read_bytes() for path in built + runs + tracked] + [log.encode() for log in LOGS] + SENT
    assert built and len(LOGS) >= 2 and SENT
    assert not [text for text in texts if KEY.encode() in text or AUTH.encode() in text]
    assert not [path for path in tracked if USER.encode() in path.read_bytes()]


def test_push_train_of_a_big_experiment_runs_its_smoke_test_then_pushes_it_whole(samples, tmp_path, train_kernels):
    kernels = tmp_path / "real-kernels"
    shutil.copytree(ROOT / "kernels" / "shopee-train", kernels / "shopee-train")
    experiment = (kernels / "shopee-train" / "experiments" / "exp001.yaml").read_text()
    (kernels / "shopee-train" / "experiments" / f"{BIG}.yaml").write_text(experiment)
    overrides = yaml.safe_load(experiment)
    runs = tmp_path / "runs"
    with Recorder() as recorder:
        env = environment(recorder, tmp_path)
        args = ["--kernels", kernels, "--sample", samples / "sample", "--runs", runs]
        result = deliver(recorder, env, "push-train", BIG, *args)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = smoke_rows(samples / "sample" / "train.csv")
    projection = f"shopee-train/experiments/{BIG}.yaml: projected GPU time on Kaggle's 2 x T4"
    assert projection in result.stdout and "all 10 epochs:" in result.stdout
    assert result.stdout.index(projection) < result.stdout.index("pre-flight smoke run")
    assert "shrunk: train.epochs 10 -> 1; image.sizes [256] -> [64]" in result.stdout
    assert f"pre-flight smoke run on {rows} of the 300 rows" in result.stdout
    assert f"as the smoke test {tmp_path / 'build' / f'shopee-train-{BIG}-smoke'}" in result.stdout
    metrics = json.loads((runs / f"shopee-train-{BIG}-smoke" / "metrics.json").read_text())
    assert len(metrics["epochs"]) == 1 and metrics["epochs"][0]["cv"]["text"] > 0
    [save] = recorder.calls("SaveKernel")
    assert save["slug"] == f"{USER}/shopee-train-{BIG}"
    assert save["datasetDataSources"] == [f"{USER}/all-minilm-l6-v2", f"{USER}/shopee-wheels"]
    assert f"EXPERIMENT = {overrides!r}" in save["text"] and "'epochs': 1" not in save["text"]


def test_smoke_experiment_shrinks_and_swaps_only_a_backbone_without_local_weights(tmp_path):
    overrides = {
        "train": {"epochs": 10, "batch_size": 16},
        "image": {"sizes": [256, 320]},
        "resume": "killed-run",
        "model": {"image": {"backbone": "efficientnet_b3", "weights": "b3-weights/b3.pth"}},
    }
    shrunk, notes, unread = preflight.smoke_experiment(overrides, "big.yaml", tmp_path)
    assert shrunk == {
        "train": {"epochs": 1, "batch_size": 16, "workers": 0},
        "image": {"sizes": [64]},
        "resume": None,
        "model": {"image": {"backbone": "test_resnet", "weights": "random"}},
    }
    assert unread == {"b3-weights"} and len(notes) == 5
    assert notes[2] == "train.workers 2 -> 0 (batches made in the kernel process)"
    swap = "efficientnet_b3 with weights b3-weights/b3.pth -> test_resnet from random weights"
    assert f"{swap} (no local copy in {tmp_path})" in notes[4]
    (tmp_path / "b3-weights").mkdir()
    (tmp_path / "b3-weights" / "b3.pth").write_bytes(b"weights")
    kept, notes, unread = preflight.smoke_experiment({**overrides, "image": {"sizes": [32]}}, "big.yaml", tmp_path)
    assert kept["model"] == overrides["model"] and kept["image"] == {"sizes": [32]} and unread == set()
    assert notes[:2] == ["train.epochs 10 -> 1", "image.sizes [32] -> [32]"]
    random = {**overrides, "model": {"image": {"backbone": "efficientnet_b3", "weights": "random"}}}
    kept, notes, unread = preflight.smoke_experiment(random, "random.yaml", tmp_path)
    assert kept["model"] == random["model"] and unread == set() and len(notes) == 4


def test_smoke_experiment_stands_in_the_offline_minilm_for_a_text_model_without_a_local_copy(tmp_path):
    overrides = {"model": {"image": None, "name": "text", "text": {"model_dir": "xlm-roberta-base", "max_length": 64}}}
    overrides["model"] |= {"fusion": None, "heads": {"concat": None, "image": None}}
    shrunk, notes, unread = preflight.smoke_experiment(overrides, "xlmr.yaml", tmp_path)
    assert shrunk["model"]["text"] == {"model_dir": "all-minilm-l6-v2", "max_length": 64} and unread == {
        "xlm-roberta-base"
    }
    assert notes[-1] == f"model.text xlm-roberta-base -> all-minilm-l6-v2 (no local copy in {tmp_path})"
    (tmp_path / "xlm-roberta-base").mkdir()
    (tmp_path / "xlm-roberta-base" / "config.json").write_text("{}")
    kept, notes, unread = preflight.smoke_experiment(overrides, "xlmr.yaml", tmp_path)
    assert kept["model"]["text"]["model_dir"] == "xlm-roberta-base" and unread == set()


@pytest.mark.parametrize("name", ["diary-b3-mbert", "diary-b3-mbert-transformer", "first-place-nfnet-xlmr"])
def test_each_recipe_passes_the_push_checks_once_attached_and_smoke_runs_on_local_stand_ins(
    name, minilm, trained_runs, tmp_path, monkeypatch
):
    from lib.training import experiment, train

    source = ROOT / "kernels" / "shopee-train" / "recipes" / f"{name}.yaml"
    overrides = yaml.safe_load(source.read_text())
    assert source.read_text().startswith("# "), "each recipe cites where its figures come from"
    settings_path = ROOT / "kernels" / "shopee-train" / "kernel.yaml"
    settings = yaml.safe_load(settings_path.read_text())
    inputs = [overrides["model"]["image"]["weights"].split("/")[0], overrides["model"]["text"]["model_dir"]]
    with pytest.raises(preflight.PreflightError, match="does not attach"):
        preflight.check_experiment(overrides, source.name, settings, settings_path)
    attached = {**settings, "dataset_sources": settings["dataset_sources"] + inputs}  # as recipes/README.md says
    preflight.check_experiment(overrides, source.name, attached, settings_path)
    config = experiment.resolve(overrides, source.name)
    assert config["model"]["fusion"]["linear_out"] == 2048 and set(config["model"]["heads"]) == {
        "concat",
        "image",
        "text",
    }
    shrunk, notes, unread = preflight.smoke_experiment(overrides, source.name, minilm.parent)
    assert shrunk["model"]["image"] == {**overrides["model"]["image"], "backbone": "test_resnet", "weights": "random"}
    assert shrunk["model"]["text"]["model_dir"] == "all-minilm-l6-v2" and unread == set(inputs)
    # the smoke run itself, as the pre-flight's kernel would train it: one epoch on the first whole groups of a sample
    # (here of about 120 rows: the recipe's parts, not the row count, are what it checks)
    monkeypatch.setattr(preflight, "SMOKE_ROWS", 120)
    root = tmp_path / "input"
    preflight.smoke_competition(trained_runs.competition, root / "competitions" / "shopee-product-matching")
    (root / "datasets" / "someone").mkdir(parents=True)
    (root / "datasets" / "someone" / "all-minilm-l6-v2").symlink_to(minilm, target_is_directory=True)
    monkeypatch.setenv("KERNEL_INPUT_DIR", str(root))
    metrics = train.run(experiment.resolve(shrunk, source.name), name, tmp_path / "run")
    [epoch] = metrics["epochs"]
    assert {"concat", "image", "text"} <= set(epoch["cv"]) and all(0 < f1 <= 1 for f1 in epoch["cv"].values())
    assert (tmp_path / "run" / "model.pt").is_file()


def test_an_experiment_reading_an_unattached_source_or_refused_by_lib_experiment_is_refused(tmp_path):
    settings = {"dataset_sources": ["all-minilm-l6-v2"], "kernel_sources": ["someone/shopee-train-old"]}
    path = tmp_path / "kernel.yaml"
    preflight.check_experiment({"resume": "shopee-train-old", "model": RANDOM}, "ok.yaml", settings, path)
    weights = {"model": {"image": {"backbone": "efficientnet_b3", "weights": "b3-weights/b3.pth"}}}
    with pytest.raises(preflight.PreflightError) as refused:
        preflight.check_experiment(weights, "big.yaml", settings, path)
    assert str(refused.value) == (
        f"big.yaml: model.image.weights reads 'b3-weights/b3.pth', but {path} does not attach 'b3-weights'; "
        "add it to dataset_sources (described in datasets-meta/) or kernel_sources"
    )
    with pytest.raises(preflight.PreflightError, match="bad.yaml: train.epochs: 'ten' is not"):
        preflight.check_experiment({"train": {"epochs": "ten"}}, "bad.yaml", settings, path)


def model_tar(files: dict[str, bytes]) -> bytes:
    """A Kaggle model instance version's files as the tar.gz Kaggle serves."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_a_kaggle_model_is_downloaded_as_the_local_copy_make_run_mounts(tmp_path):
    handle = "google/siglip/transformers/base-patch16-256-multilingual/1"
    files = {"config.json": b'{"model_type": "siglip"}', "model.safetensors": b"weights"}
    with Recorder(model_tar=model_tar(files)) as recorder:
        env = environment(recorder, tmp_path)
        result = deliver(recorder, env, "model-source", handle, "--models", tmp_path / "models")
        refused = deliver(recorder, env, "model-source", "google/siglip/transformers/base", "--models", tmp_path)
    assert result.returncode == 0, result.stderr
    [call] = recorder.calls("DownloadModelInstanceVersion")
    assert (call["ownerSlug"], call["modelSlug"], call["instanceSlug"], call["versionNumber"]) == (
        "google",
        "siglip",
        "base-patch16-256-multilingual",
        1,
    )
    folder = tmp_path / "models" / handle
    assert {path.name: path.read_bytes() for path in folder.iterdir()} == files
    assert f"under model_sources:\n  - {handle}" in result.stdout
    assert "reads it by its instance: source 'base-patch16-256-multilingual'" in result.stdout
    assert refused.returncode == 1 and "give a Kaggle model as owner/model/framework/instance/version" in refused.stderr
    assert len(recorder.calls("DownloadModelInstanceVersion")) == 1, "a malformed handle sends nothing"
