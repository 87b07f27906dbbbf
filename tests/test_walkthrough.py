"""The README's walkthrough, from a fresh clone to a leaderboard submission, one make target at a time: in a copy of
the repository's files, with the real `kaggle` CLI against the recording Kaggle (tests/kaggle_recorder.py) and the
real timm / transformers clients against the local hub (tests/hub_server.py). Kaggle's own runs of the pushed
training kernel are stood in for by the same built kernel run here; what it wrote is what the recorder serves."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from lib.inference.plan import validate_tuned_config
from lib.training import experiment
from tests import tiny_encoders
from tests.hub_server import Hub, tiny_models
from tests.kaggle_recorder import Recorder, competition_zip
from tests.wheel_files import write_wheel

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "notarealtoken0walkthrough0cafe"
USER = "walker"  # whom the recorder's IntrospectToken says the token belongs to
EXPERIMENT = "walk"
TRAIN_KERNEL = f"shopee-train-{EXPERIMENT}"
COMP = "data/shopee-product-matching"  # where `make competition-data` puts the competition
WEIGHTS = ["test-resnet-r160-in1k", "tiny-bert-multilingual"]  # the slugs `make pretrained` gives the two models
TRAINING = {  # the experiment's own settings beside the lines `make pretrained` printed: a minute on 2 cores
    "folds": {"count": 4, "fold": 0},
    "train": {"epochs": 1, "batch_size": 32, "workers": 0, "lr": {"image": 3.0e-3, "text": 1.0e-4}},
    "image": {"sizes": [32]},
    "model": {"text": {"max_length": 12, "embedding": 32}, "fusion": {"linear_out": 64}},
}


def fresh_clone(folder: Path) -> Path:
    """The repository's files (tracked and not ignored) copied into folder, with the installed .venv linked."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    ).stdout.split("\0")
    for name in filter(None, listed):
        if (ROOT / name).is_file():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, folder / name)
    (folder / ".venv").symlink_to(ROOT / ".venv", target_is_directory=True)
    return folder


def make(clone: Path, env: dict, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run a make target in the clone (set-up taken as done: the tests run inside the installed .venv); fail the test
    with its output when it fails."""
    command = ["make", "-s", "-o", ".venv/.installed", *args]
    result = subprocess.run(command, env=env, capture_output=True, text=True, cwd=clone, timeout=timeout)
    assert result.returncode == 0, f"make {' '.join(args)}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    assert TOKEN not in result.stdout + result.stderr
    return result


def environments(recorder: Recorder, hub: Hub, tmp_path: Path) -> tuple[dict, dict]:
    """The environment of the Kaggle steps (the recorder as Kaggle, the user's API token, a private home) and of the
    hub steps (huggingface_hub sent to the local hub, no proxy)."""
    proxies = {"http_proxy", "https_proxy", "no_proxy", "all_proxy"}
    base = {k: v for k, v in os.environ.items() if not k.startswith(("KAGGLE_", "HF_")) and k.lower() not in proxies}
    for folder in ["home", "tmp", "kaggle-config", "hf-home"]:
        (tmp_path / folder).mkdir()
    base |= {"HOME": str(tmp_path / "home"), "TMPDIR": str(tmp_path / "tmp")}
    kaggle = base | recorder.environment(tmp_path / "kaggle-config") | {"KAGGLE_API_TOKEN": TOKEN}
    return kaggle, base | {"HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path / "hf-home")}


def add_sources(settings_path: Path, key: str, sources: list[str]) -> None:
    """Attach sources in a kernel.yaml, as the README tells the user to."""
    settings = yaml.safe_load(settings_path.read_text())
    settings[key] = [*settings.get(key, []), *sources]
    settings_path.write_text(yaml.safe_dump(settings, sort_keys=False))


def settings_lines(printed: str) -> dict:
    """The experiment settings `make pretrained` printed (`model.image.weights: slug/file` lines) as overrides."""
    overrides = {}
    for line in printed.splitlines():
        key, _, value = line.strip().partition(": ")
        if key.startswith("model."):
            *parents, last = key.split(".")
            target = overrides
            for parent in parents:
                target = target.setdefault(parent, {})
            target[last] = value
    return overrides


def saved(recorder: Recorder, slug: str) -> dict:
    """The last SaveKernel call of a kernel slug."""
    return [call for call in recorder.calls("SaveKernel") if call["slug"] == f"{USER}/{slug}"][-1]


def test_a_fresh_clone_reaches_a_leaderboard_submission_one_make_target_at_a_time(tmp_path, minilm):
    clone = fresh_clone(tmp_path / "clone")
    kaggle_side = tmp_path / "kaggle"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "tools.data.make_sample",
            "--out",
            kaggle_side / "competition",
            "--rows",
            "300",
            "--seed",
            "5",
        ],
        check=True,
        cwd=ROOT,
        capture_output=True,
    )
    recorder = Recorder(competition_zip=competition_zip(kaggle_side / "competition"), token_user=USER, lifetime=1200)
    with recorder, Hub(tiny_models(tmp_path, minilm)) as hub:
        kaggle, hub_env = environments(recorder, hub, tmp_path)

        # 3. the competition's data, checked
        data = make(clone, kaggle, "competition-data")
        assert recorder.calls("DownloadDataFiles") == [{"competitionName": "shopee-product-matching"}]
        assert (clone / COMP / "train.csv").read_bytes() == (kaggle_side / "competition" / "train.csv").read_bytes()
        assert f"use it as COMP={clone / COMP}" in data.stdout

        # 4. weights: fetched from the hub, described, published, attached
        printed = [
            make(clone, hub_env, "pretrained", f"MODEL={model}").stdout
            for model in ["timm:test_resnet.r160_in1k", "hf:someone/tiny-bert-multilingual"]
        ]
        assert ("GET", "/timm/test_resnet.r160_in1k/resolve/main/model.safetensors") in hub.requests
        for slug in WEIGHTS:
            assert (clone / "datasets-meta" / slug / "dataset-metadata.json").is_file()
            make(clone, kaggle, "upload-weights", f"DATASET={slug}")
        created = recorder.calls("CreateDataset")
        assert [(call["ownerSlug"], call["slug"]) for call in created] == [(USER, slug) for slug in WEIGHTS]
        assert all(call["files"] for call in created) and len(recorder.blobs) >= 3
        add_sources(clone / "kernels/shopee-train/kernel.yaml", "dataset_sources", WEIGHTS)
        overrides = experiment.merged(TRAINING, settings_lines("\n".join(printed)))
        assert overrides["model"]["image"]["weights"] == "test-resnet-r160-in1k/test_resnet.safetensors"
        (clone / f"kernels/shopee-train/experiments/{EXPERIMENT}.yaml").write_text(yaml.safe_dump(overrides))

        # 5. train on Kaggle: pushed with its projection, then Kaggle's run (stood in for here), waited for
        pushed = make(clone, kaggle, "push-train", f"EXP={EXPERIMENT}", "FORCE=1")
        assert f"experiments/{EXPERIMENT}.yaml: projected GPU time on Kaggle's 2 x T4" in pushed.stdout
        train_push = saved(recorder, TRAIN_KERNEL)
        assert train_push["machineShape"] == "NvidiaTeslaT4" and train_push["enableGpu"] is True
        assert sorted(train_push["datasetDataSources"]) == sorted(
            f"{USER}/{slug}" for slug in ["all-minilm-l6-v2", "shopee-wheels", *WEIGHTS]
        )
        assert train_push["competitionDataSources"] == ["shopee-product-matching"]
        make(clone, kaggle, "train", f"EXP={EXPERIMENT}", f"COMP={COMP}", timeout=600)  # Kaggle's run, here
        shutil.move(clone / "runs" / TRAIN_KERNEL, kaggle_side / TRAIN_KERNEL)
        files = [path for path in sorted((kaggle_side / TRAIN_KERNEL).rglob("*")) if path.is_file()]
        recorder.outputs = {str(path.relative_to(kaggle_side / TRAIN_KERNEL)): path.read_bytes() for path in files}
        recorder.kernel_status = ["RUNNING", "COMPLETE"]
        waited = make(clone, kaggle, "wait", f"KERNEL={TRAIN_KERNEL}", "EVERY=0.1")
        assert "RUNNING" in waited.stdout and "COMPLETE" in waited.stdout

        # 6. the runs pulled and merged
        make(clone, kaggle, "pull-runs")
        for name in recorder.outputs:
            assert (clone / "runs" / TRAIN_KERNEL / name).read_bytes() == recorder.outputs[name]
        assert (clone / "runs" / "mlflow.db").is_file()

        # 7. the plan: optimised here on the pulled run, then on Kaggle
        make(clone, kaggle, "optimize", f"RUNS={TRAIN_KERNEL}", f"COMP={COMP}", timeout=600)
        plan = json.loads((clone / "runs/optimize-ensemble/inference_config.json").read_text())
        checkpoints = [model for model in plan["models"].values() if model["kind"] == "checkpoint"]
        assert checkpoints and {model["source"] for model in checkpoints} == {TRAIN_KERNEL}
        make(clone, kaggle, "push-optimize", f"RUNS={TRAIN_KERNEL}")
        optimiser = saved(recorder, "optimize-ensemble")
        assert optimiser["kernelDataSources"] == [f"{USER}/{TRAIN_KERNEL}"] and optimiser["enableGpu"] is False
        recorder.kernel_status = "COMPLETE"
        make(clone, kaggle, "wait", "KERNEL=optimize-ensemble", "EVERY=0.1")

        # 8. inference pushed with the plan and the run attached, then submitted and read back
        inference_settings = clone / "kernels/shopee-inference/kernel.yaml"
        settings = yaml.safe_load(inference_settings.read_text())
        settings["kernel_sources"] = ["optimize-ensemble", TRAIN_KERNEL]
        settings["dataset_sources"] += WEIGHTS
        inference_settings.write_text(yaml.safe_dump(settings, sort_keys=False))
        make(clone, kaggle, "push-inference", "FORCE=1")
        inference = saved(recorder, "shopee-inference")
        assert inference["kernelDataSources"] == [f"{USER}/optimize-ensemble", f"{USER}/{TRAIN_KERNEL}"]
        assert inference["enableInternet"] is False and "KAGGLE_API_TOKEN" not in inference["text"]
        make(clone, kaggle, "wait", "KERNEL=shopee-inference", "EVERY=0.1")
        submitted = make(clone, kaggle, "submit", "MESSAGE=walkthrough")
        [submission] = recorder.calls("CreateCodeSubmission")
        version = json.loads((clone / "build/shopee-inference/push.json").read_text())["version"]
        assert submission["kernelSlug"] == "shopee-inference" and submission["kernelVersion"] == version
        assert submission["submissionDescription"] == "walkthrough" and "PENDING" in submitted.stdout
    assert {request.rpc for request in recorder.requests if TOKEN.encode() in request.body} == {"IntrospectToken"}
    written = [path for folder in ["build", "runs", "data"] for path in (clone / folder).rglob("*") if path.is_file()]
    assert written and not [path for path in written if TOKEN.encode() in path.read_bytes()]


def fake_wheelhouse(folder: Path) -> Path:
    """A folder of wheels (tests/wheel_files.py) for each pin of tools/env/wheels.txt: pip's stand-in for PyPI."""
    folder.mkdir()
    for line in (ROOT / "tools" / "env" / "wheels.txt").read_text().splitlines():
        requirement = line.split("#")[0].strip()
        if requirement:
            name, version = requirement.split("==")
            write_wheel(folder, name.replace("-", "_"), version, "py3-none-any")
    return folder


def first_plan(clone: Path, encoders: list[str]) -> dict:
    """A plan over the encoders' entries (as make pretrained wrote them) and word TF-IDF: what the optimiser's run on
    Kaggle leaves, served by the recorder as its output."""
    models = {slug: json.loads((clone / "datasets-meta" / slug / "encoder.json").read_text()) for slug in encoders}
    outputs = {slug: "text" if entry["kind"] == "sentence" else "image" for slug, entry in models.items()}
    components = {
        out: {"members": [{"model": s, "output": out, "weight": 1.0}], "blend": None} for s, out in outputs.items()
    }
    plan = {
        "models": models,
        "components": components | {"tfidf": {"tfidf": {"analyzer": "word"}}},
        "matching": {
            "components": {"tfidf": {"threshold": 0.7}, "text": {"threshold": 0.9}},
            "groups": ["title"],
            "unit_filter": True,
            "mutual": False,
        },
        "cv": {"rows": 150, "f1": {"union": 0.8}},
    }
    validate_tuned_config(plan, "first_plan")
    return plan


def test_make_first_submission_reaches_a_score_without_training_and_goes_on_after_a_refusal(tmp_path, minilm):
    clone = fresh_clone(tmp_path / "clone")
    competition = tmp_path / "kaggle" / "competition"
    command = [sys.executable, "-m", "tools.data.make_sample", "--out", competition, "--rows", "150", "--seed", "5"]
    subprocess.run(list(map(str, command)), check=True, cwd=ROOT, capture_output=True)
    recorder = Recorder(competition_zip=competition_zip(competition), token_user=USER, lifetime=1200)
    recorder.gpu_hours = (30.0, 30.0)  # the week's GPU hours are spent: the optimiser's push is refused
    recorder.scoring = [{"status": "COMPLETE", "publicScore": "0.712"}]
    models = ["hf:intfloat/tiny-multilingual-e5-small", "hf:someone/tiny-clip"]
    encoders = ["tiny-multilingual-e5-small", "tiny-clip"]
    with recorder, Hub(tiny_encoders.hub_repos(tmp_path)) as hub:
        kaggle, hub_env = environments(recorder, hub, tmp_path)
        pip = {
            "PIP_CONFIG_FILE": os.devnull,
            "PIP_NO_INDEX": "1",
            "PIP_FIND_LINKS": str(fake_wheelhouse(tmp_path / "wheelhouse")),
        }
        env = (
            kaggle
            | {key: hub_env[key] for key in ["HF_ENDPOINT", "HF_HOME"]}
            | pip
            | {"NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"}
        )
        target = ["first-submission", f"MODELS={' '.join(models)}", "FORCE=1", "WAIT=30", "EVERY=0.1"]
        refused = subprocess.run(
            ["make", "-s", "-o", ".venv/.installed", *target],
            env=env,
            capture_output=True,
            text=True,
            cwd=clone,
            timeout=600,
        )
        assert refused.returncode != 0, refused.stdout[-3000:] + refused.stderr[-3000:]
        assert "[5/9] the optimiser over the encoders, pushed ..." in refused.stdout
        assert "a GPU kernel would not start" in refused.stderr and "goes on from this step" in refused.stderr
        assert not recorder.calls("SaveKernel"), "nothing pushed once the quota was spent"
        created = [(call["ownerSlug"], call["slug"]) for call in recorder.calls("CreateDataset")]
        assert created == [(USER, slug) for slug in [*encoders, "shopee-wheels"]]

        recorder.gpu_hours = (12.5, 30.0)
        recorder.outputs = {"inference_config.json": json.dumps(first_plan(clone, encoders)).encode()}
        made = make(clone, env, *target)
        for number, step in enumerate(["the competition's data", "the pretrained encoders, fetched here"], start=1):
            assert f"[{number}/9] {step}: done before" in made.stdout
        assert len(recorder.calls("DownloadDataFiles")) == 1 and len(recorder.calls("CreateDataset")) == 3
        optimiser, inference = saved(recorder, "optimize-ensemble"), saved(recorder, "shopee-inference")
        assert optimiser["enableGpu"] is True and optimiser.get("kernelDataSources", []) == []
        assert sorted(optimiser["datasetDataSources"]) == sorted(f"{USER}/{slug}" for slug in encoders)
        assert inference["kernelDataSources"] == [f"{USER}/optimize-ensemble"]
        assert {f"{USER}/{slug}" for slug in [*encoders, "shopee-wheels"]} <= set(inference["datasetDataSources"])
        assert recorder.calls("CreateCodeSubmission")[0]["kernelSlug"] == "shopee-inference"
        assert "public score 0.712" in made.stdout and "first submission made" in made.stdout
    assert {request.rpc for request in recorder.requests if TOKEN.encode() in request.body} == {"IntrospectToken"}
