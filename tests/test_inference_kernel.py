"""End to end: the inference kernel built and run offline by a real Jupyter kernel on a two-model plan.

The two tiny trained runs of conftest.py stand for the demo's training outputs (shopee-train-demo, -demo2); the
plan (inference_config.json) is written here as the optimize-ensemble kernel would, and attached as its output.
"""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jupytext
import numpy as np
import pandas as pd
import pytest

import build
from lib.data import oof
from lib.data.postings import read_postings
from lib.data.submission import validate_submission
from lib.data.text import normalise_title, tfidf_vectors
from lib.inference import correction, time_budget, title_plan
from lib.inference.plan import TITLE_PLAN, validate_tuned_config
from lib.matching import pairs
from lib.matching.ensemble import MIN_GAIN
from lib.matching.metrics import mean_f1, true_matches
from lib.models import embed, sentence
from lib.neighbours.combine import combine
from lib.neighbours.dense import neighbors
from lib.neighbours.sparse import sparse_neighbors
from lib.second_stage import pair_stage
from tests.conftest import COMPETITION, MINILM, OWNER, edit_settings

ROOT = Path(__file__).resolve().parent.parent
KERNEL = "shopee-inference"
SOURCES = {"shopee-train-demo": "shopee-train-a", "shopee-train-demo2": "shopee-train-b"}


def run(*args, check=True):
    result = subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0 or not check, result.stdout + result.stderr
    return result.stdout + result.stderr


def run_kernel(*args, check=True):
    """`python -m tools.local.run_kernel` with these arguments; its output."""
    return run("-m", "tools.local.run_kernel", *args, check=check)


def notebook_output(out: Path, name: str = KERNEL) -> str:
    """Everything the executed notebook's cells printed."""
    notebook = json.loads((out / f"{name}.ipynb").read_text())
    texts = [o.get("text", "") for cell in notebook["cells"] for o in cell.get("outputs", [])]
    return "".join(text if isinstance(text, str) else "".join(text) for text in texts)


def union_thresholds(run: Path) -> dict[str, float]:
    """The thresholds of each output in the union that a training run tuned at its best epoch (an output the union
    leaves out: its own best threshold)."""
    metrics = json.loads((run / "metrics.json").read_text())
    best = next(entry for entry in metrics["epochs"] if entry["epoch"] == metrics["best"]["epoch"])
    alone = {output: best["thresholds"][output] for output in ["concat", "image", "text"]}
    return alone | {output: rule for output, rule in best["thresholds"]["union"].items() if rule < 1}


def two_model_plan(trained_runs) -> dict:
    """A plan over both runs: their concat outputs averaged, the image output of one, TF-IDF; the runs' thresholds."""
    a, b = (union_thresholds(trained_runs.runs[name]) for name in SOURCES.values())
    rules = {
        "components": {
            "concat": {"threshold": round((a["concat"] + b["concat"]) / 2, 2), "min2": 0.5},
            "image": {"threshold": a["image"]},
            "tfidf": {"threshold": 0.6},
        },
        "groups": ["title"],
        "unit_filter": True,
        "mutual": False,
    }
    plan = {
        "models": {
            "a": {"kind": "checkpoint", "source": "shopee-train-demo", "file": "model.pt"},
            "b": {"kind": "checkpoint", "source": "shopee-train-demo2", "file": "model.pt"},
        },
        "components": {
            "concat": {
                "members": [{"model": m, "output": "concat", "weight": w} for m, w in [("a", 0.6), ("b", 0.4)]],
                "blend": None,
            },
            "image": {"members": [{"model": "a", "output": "image", "weight": 1.0}], "blend": None},
            "tfidf": {"tfidf": {"analyzer": "word"}},
        },
        "matching": rules,
        "cv": {"rows": 1, "f1": {"union": 0.5}},
    }
    validate_tuned_config(plan, "two_model_plan")
    return plan


def out_of_fold_signals(plan: dict, trained_runs) -> tuple:
    """The plan's component vectors, neighbours and candidate pairs on the runs' stored out-of-fold embeddings, as the
    optimiser has them, with the rows' normalised titles, phashes and labels."""
    runs = {
        name: oof.read_run(model["source"], trained_runs.runs[SOURCES[model["source"]]])
        for name, model in plan["models"].items()
    }
    train = read_postings(trained_runs.competition / "train.csv", labelled=True)
    postings = oof.oof_postings(runs["a"], train, "train.csv")
    titles = [normalise_title(title) for title in postings.title]
    corpus = [normalise_title(title) for title in train.title]
    vectors = {}
    for name, component in plan["components"].items():
        if "tfidf" in component:
            vectors[name] = tfidf_vectors(titles, corpus, component["tfidf"]["analyzer"])
            continue
        members = component["members"]
        vectors[name] = combine(
            [runs[m["model"]].outputs[m["output"]] for m in members], [m["weight"] for m in members]
        )
    search = {name: sparse_neighbors if name == "tfidf" else neighbors for name in vectors}
    found = {name: search[name](x, k=50) for name, x in vectors.items()}
    phashes = list(postings.image_phash)
    c = pairs.candidates(found, {"title": titles, "phash": phashes})
    return vectors, found, c, titles, phashes, runs["a"].labels


def runs_folder(folder: Path, trained_runs, plan: dict, stage: bool = False) -> Path:
    """A runs folder holding the trained runs under the demo slugs and the optimize-ensemble output as the optimiser
    writes it: the plan, with a second stage fitted on the out-of-fold rows when `stage` (its classifier beside it),
    and the out-of-fold pairs its correction for a test gallery needs."""
    out = folder / "optimize-ensemble"
    out.mkdir(parents=True)
    vectors, found, c, titles, phashes, labels = out_of_fold_signals(plan, trained_runs)
    out_of_fold = correction.OutOfFold(c, pairs.unit_conflicts(c, titles), labels)
    if stage:
        fitted = pair_stage.fit(vectors, found, c, titles, phashes, labels)
        fitted.model.save_model(str(out / pair_stage.MODEL_FILE))
        plan = {**plan, "pair_stage": {"file": pair_stage.MODEL_FILE, "features": fitted.scored.names}}
        plan["pair_stage"]["graph"] = fitted.config
        out_of_fold.stage_pairs, out_of_fold.stage_scores = fitted.scored.candidates, fitted.scored.scores
    validate_tuned_config(plan, "runs_folder")
    (out / "inference_config.json").write_text(json.dumps(plan))
    used = plan["components"] if stage else plan["matching"]["components"]
    correction.write(out / correction.FILE, correction.kept(out_of_fold, list(used)))
    for slug, name in SOURCES.items():
        (folder / slug).symlink_to(trained_runs.runs[name], target_is_directory=True)
    return folder


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """The build folder holding the inference kernel built from kernels/."""
    folder = tmp_path_factory.mktemp("build")
    build.build_kernel(ROOT / "kernels" / KERNEL, folder)
    return folder


def test_two_model_plan_with_a_pair_stage_built_and_source_give_the_same_outputs(trained_runs, built, tmp_path):
    runs = runs_folder(tmp_path / "runs", trained_runs, two_model_plan(trained_runs), stage=True)
    log = run_kernel(KERNEL, "--comp", trained_runs.competition, "--runs", runs, "--build", built)
    run_kernel(
        KERNEL,
        "--comp",
        trained_runs.competition,
        "--runs",
        runs,
        "--build",
        built,
        "--source",
    )
    out, source = runs / KERNEL, runs / f"{KERNEL}-source"
    for name in ["submission.csv", "cv_scores.json", "matching_config.json", "run_status.json"]:
        assert (out / name).read_bytes() == (source / name).read_bytes(), name
    assert json.loads((out / "run_status.json").read_text()) == {"fallback": False}
    assert "CV mean F1" in log

    report = json.loads((out / "cv_scores.json").read_text())
    oof_ids = np.load(trained_runs.runs["shopee-train-a"] / "oof_embeddings.npz")["posting_id"]
    assert report["rows"] == len(oof_ids) and report["evaluated_on"] == "the models' out-of-fold rows"
    assert set(report["f1"]) == {"concat", "image", "tfidf", "union", "pair stage"}
    assert report["pair_stage"]["used"] and report["pair_stage"]["pairs"] > report["rows"]
    assert report["ablation"]["pair stage"] == report["f1"]["pair stage"]
    printed = notebook_output(out)
    assert "submission.csv by the plan (pair stage)" in printed and "test pairs scored by lightgbm" in printed
    # the image component is model a's image output alone: its CV is what training measured on the same rows
    metrics = json.loads((trained_runs.runs["shopee-train-a"] / "metrics.json").read_text())
    best = next(entry for entry in metrics["epochs"] if entry["epoch"] == metrics["best"]["epoch"])
    assert report["f1"]["image"] == pytest.approx(best["cv"]["image"], abs=0.005)
    for output in ["concat", "image", "text", "union"]:  # each model alone, as its training measured it
        assert report["models"][f"a/{output}"] == pytest.approx(best["cv"][output], abs=0.005)
    assert report["gallery_corrected"]["rows"] == 70000
    assert report["ablation"]["tuned"] == pytest.approx(report["f1"]["union"], abs=0.02)
    validate_submission(out / "submission.csv", pd.read_csv(trained_runs.competition / "test.csv").posting_id)
    timings = json.loads((out / "timings.json").read_text())
    names = [stage["name"] for stage in timings["stages"]]
    assert "plan: read the plan's out-of-fold pairs" in names and "plan: fit to the test gallery" in names
    assert "test (as evaluation): a: embeddings" in names and "test (as evaluation): concat: neighbours" in names
    assert {"test (as evaluation): pair stage: features", "test (as evaluation): pair stage: graph steps"} <= set(names)
    assert not [name for name in names if name.startswith("evaluation:")], "the rerun skips the evaluation"
    assert "test (as evaluation): fallback submission" in names, "timed on the evaluation rows for the projection"
    kinds = {stage["name"]: stage["kind"] for stage in timings["stages"]}
    assert kinds["test (as evaluation): a: read images"] == "decode"
    assert kinds["test (as evaluation): a: embeddings"] == "forward"
    assert kinds["test (as evaluation): concat: neighbours"] == "matmul"
    assert timings["t4_seconds_at_hidden_rows"] > 0
    for plot in ["similarity_histograms.png", "f1_vs_threshold.png"]:
        assert (out / plot).read_bytes()[:4] == b"\x89PNG"


@pytest.fixture(scope="module")
def hidden(trained_runs, tmp_path_factory) -> Path:
    """The scoring rerun's competition folder: the trained runs' sample with every held-out row in test.csv."""
    comp = tmp_path_factory.mktemp("hidden") / "comp"
    run("-m", "tools.data.make_sample", "--out", comp, "--rows", 300, "--seed", 3, "--hidden")
    assert (comp / "train.csv").read_bytes() == (trained_runs.competition / "train.csv").read_bytes()
    return comp


def test_hidden_rerun_survives_a_corrupt_image_a_missing_image_and_odd_titles(trained_runs, built, hidden, tmp_path):
    comp = tmp_path / "hidden"
    shutil.copytree(hidden, comp)
    shutil.copy(f"{hidden}.solution.csv", f"{comp}.solution.csv")
    test = pd.read_csv(comp / "test.csv")
    (comp / "test_images" / test.image[0]).write_bytes(b"\xff\xd8\xff\xe0 truncated")
    (comp / "test_images" / test.image[1]).unlink()
    test.loc[2, "title"], test.loc[3, "title"] = "", "\\xf0\\x9f\\x94\\xa5 !!! ??? 0 ml"
    test.to_csv(comp / "test.csv", index=False)
    runs = runs_folder(tmp_path / "runs", trained_runs, two_model_plan(trained_runs))
    log = run_kernel(KERNEL, "--comp", comp, "--runs", runs, "--build", built)

    out = runs / KERNEL
    assert json.loads((out / "run_status.json").read_text()) == {"fallback": False}
    reports = [line for line in log.splitlines() if "images unreadable" in line]
    folder = (comp / "test_images").resolve()
    expected = f"2 of {len(test)} images unreadable in {folder} (grey placeholders stand in): {test.image[0]}: "
    assert len(reports) == 2 and all(line.startswith(expected) for line in reports), "one line per model's pass"
    assert f"; {test.image[1]}: FileNotFoundError" in reports[0] and str(folder) + "/" not in log
    assert json.loads((out / "matching_config.json").read_text())["for_the_test_gallery"]["rows"] == len(test)
    assert not (out / "cv_scores.json").exists(), "the scoring rerun only submits"
    validate_submission(out / "submission.csv", test.posting_id)
    submission = pd.read_csv(out / "submission.csv").set_index("posting_id").loc[test.posting_id]
    solution = pd.read_csv(f"{comp}.solution.csv").set_index("posting_id").loc[test.posting_id]
    actual = true_matches(list(solution.index), list(solution.label_group))
    singletons = [{posting_id} for posting_id in test.posting_id]
    assert mean_f1(submission.matches.str.split(), actual) > mean_f1(singletons, actual)
    timings = json.loads((out / "timings.json").read_text())
    assert len(test) < time_budget.MIN_TEST_ROWS, "a test too small to project from: the rows of the plan stand in"
    assert timings["basis"].startswith(f"test.csv's {len(test)} rows are too few to project from")
    left_out = timings["basis"].split("; left out, with none: ")[1].split(", ")
    assert {"test: a: embeddings", "test: b: embeddings", "test: candidate pairs"} <= set(left_out)


def input_root(folder: Path, competition: Path, runs: Path) -> Path:
    """A /kaggle/input stand-in in Kaggle's current layout: the competition, the offline MiniLM, each run a source."""
    (folder / "competitions").mkdir(parents=True)
    (folder / "competitions" / COMPETITION).symlink_to(competition, target_is_directory=True)
    for kind, sources in [("datasets", [MINILM]), ("notebooks", list(runs.iterdir()))]:
        (folder / kind / OWNER).mkdir(parents=True)
        for source in sources:
            (folder / kind / OWNER / source.name).symlink_to(source.resolve(), target_is_directory=True)
    return folder


def test_the_scoring_rerun_embeds_each_test_posting_once_per_model_and_no_train_posting(
    trained_runs, hidden, tmp_path, monkeypatch
):
    """The notebook's cells run here, in this process, with the embedding functions counting the postings they get."""
    runs = runs_folder(tmp_path / "runs", trained_runs, two_model_plan(trained_runs), stage=True)
    monkeypatch.setenv("KERNEL_INPUT_DIR", str(input_root(tmp_path / "input", hidden, runs)))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    (tmp_path / "working").mkdir()
    monkeypatch.chdir(tmp_path / "working")
    embedded, sentences = [], []
    real_embed, real_sentences = embed.posting_embeddings, sentence.embed_texts

    def counted_embed(checkpoint, frame, *args, **kwargs):
        embedded.append((Path(checkpoint).parent.name, list(frame.posting_id)))
        return real_embed(checkpoint, frame, *args, **kwargs)

    def counted_sentences(titles, *args, **kwargs):
        sentences.append(titles)
        return real_sentences(titles, *args, **kwargs)

    monkeypatch.setattr(embed, "posting_embeddings", counted_embed)
    monkeypatch.setattr(sentence, "embed_texts", counted_sentences)
    namespace = {"__name__": "__main__"}
    for cell in jupytext.read(ROOT / "kernels" / KERNEL / "notebook.py").cells:
        if cell.cell_type == "code":
            exec(compile(cell.source, "notebook.py", "exec"), namespace)

    assert json.loads(Path("run_status.json").read_text()) == {"fallback": False}
    test_ids = list(pd.read_csv(hidden / "test.csv").posting_id)
    assert sorted(source for source, _ in embedded) == ["shopee-train-demo", "shopee-train-demo2"]
    assert all(ids == test_ids for _, ids in embedded), "each test posting once per model, no train posting"
    assert sentences == [], "the plan has no sentence model"
    assert namespace["fitted"].stage is not None and not Path("cv_scores.json").exists()
    validate_submission("submission.csv", test_ids)


@pytest.mark.parametrize(  # Kaggle's current layout of /kaggle/input and the older one; the second stage on and off
    "layout, with_stage", [("nested", True), ("flat", False)]
)
def test_one_test_row_without_trained_models_uses_the_default_title_plan(trained_runs, tmp_path, layout, with_stage):
    kernel = tmp_path / "kernels" / f"{KERNEL}-titles"
    shutil.copytree(ROOT / "kernels" / KERNEL, kernel)
    changes = {
        '"plan": "optimize-ensemble/inference_config.json"': '"plan": None',
        '"pair_stage": True': f'"pair_stage": {with_stage}',
    }
    edit_settings(kernel / "notebook.py", changes)
    build.build_kernel(kernel, tmp_path / "build")
    comp = tmp_path / "comp"
    shutil.copytree(trained_runs.competition, comp, symlinks=True)
    test = pd.read_csv(comp / "test.csv").head(1)
    test.to_csv(comp / "test.csv", index=False)
    runs = runs_folder(tmp_path / "runs", trained_runs, two_model_plan(trained_runs))
    log = run_kernel(
        kernel.name,
        "--comp",
        comp,
        "--runs",
        runs,
        "--build",
        tmp_path / "build",
        "--layout",
        layout,
    )

    out = runs / kernel.name
    assert f"; {layout} layout;" in log
    owner = json.loads((tmp_path / "build" / kernel.name / "kernel-metadata.json").read_text())["id"].split("/")[0]
    wheels = f"datasets/{owner}/shopee-wheels" if layout == "nested" else "shopee-wheels"
    assert re.search(
        rf"packages of \S+/kaggle-input-[^/]+/{re.escape(wheels)}/requirements.txt are installed at their versions",
        notebook_output(out, kernel.name),
    )
    assert json.loads((out / "run_status.json").read_text()) == {"fallback": False}
    report = json.loads((out / "cv_scores.json").read_text())
    assert report["evaluated_on"] == "all of train", "a train within title_plan.SAMPLE_ROWS is taken whole"
    assert report["rows"] == len(pd.read_csv(comp / "train.csv"))
    on_kaggle = {
        stage["name"]: stage["target_rows"] for stage in json.loads((out / "timings.json").read_text())["stages"]
    }
    assert on_kaggle["title plan: threshold search"] == title_plan.KAGGLE_ROWS, "the sample's rows on Kaggle's train"
    assert on_kaggle["plan: fit to the test gallery"] == title_plan.KAGGLE_ROWS
    stage = report["pair_stage"]  # the title plan's second stage, fitted on train, used where it gains
    if with_stage:
        assert stage["pairs"] > report["rows"] and (out / "pair_model.txt").is_file()
        assert stage["used"] == (stage["f1"] >= report["f1"]["union"] + MIN_GAIN)
        assert set(report["f1"]) == {*TITLE_PLAN["components"], "union", "pair stage"}
    else:
        assert stage is None and not (out / "pair_model.txt").exists()
        assert set(report["f1"]) == {*TITLE_PLAN["components"], "union"}
    assert (out / "submission.csv").read_text().splitlines() == [
        "posting_id,matches",
        f"{test.posting_id[0]},{test.posting_id[0]}",
    ]


@pytest.mark.parametrize("scoring_rerun", [False, True], ids=["commit run", "scoring rerun"])
def test_a_plan_projected_over_the_budget_stops_the_commit_run_and_is_only_printed_in_the_scoring_rerun(
    trained_runs, hidden, tmp_path, scoring_rerun
):
    kernel = tmp_path / "kernels" / f"{KERNEL}-budget"
    shutil.copytree(ROOT / "kernels" / KERNEL, kernel)
    forced = "device = default_device()\ntime_budget.GPU_LIMIT_SECONDS = 1  # every plan is over it\n"
    edit_settings(kernel / "notebook.py", {"device = default_device()\n": forced})
    build.build_kernel(kernel, tmp_path / "build")
    runs = runs_folder(tmp_path / "runs", trained_runs, two_model_plan(trained_runs))
    comp = hidden if scoring_rerun else trained_runs.competition
    log = run_kernel(
        kernel.name,
        "--comp",
        comp,
        "--runs",
        runs,
        "--build",
        tmp_path / "build",
        check=False,
    )

    out = runs / (kernel.name if scoring_rerun else f"{kernel.name}.failed")
    timings = json.loads((out / "timings.json").read_text())
    largest = max(timings["stages"], key=lambda stage: stage["t4_seconds"])
    line = f"the plan's hidden rerun is projected at {timings['t4_seconds_at_hidden_rows']:,.0f} s on a T4, over 80% of"
    assert line in log and f": {largest['name']} ({largest['t4_seconds']:,.0f} s)" in log
    assert json.loads((out / "run_status.json").read_text()) == {"fallback": False}, "the plan's submission is written"
    if scoring_rerun:
        assert f"WARNING: {line}" in notebook_output(out, kernel.name) and "run failed" not in log
    else:
        assert re.search(r"run failed: cell \d+ failed:\n", log) and f"OverBudget: {line}" in log


def broken_checkpoint(trained_runs, folder: Path) -> Path:
    """A runs folder for the two-model plan whose first checkpoint (shopee-train-demo) is not a checkpoint."""
    runs = runs_folder(folder / "runs", trained_runs, two_model_plan(trained_runs))
    broken = folder / "broken-run"
    shutil.copytree(trained_runs.runs["shopee-train-a"], broken)
    (broken / "model.pt").write_bytes(b"not a checkpoint")
    (runs / "shopee-train-demo").unlink()
    (runs / "shopee-train-demo").symlink_to(broken, target_is_directory=True)
    return runs


def test_an_unreadable_checkpoint_fails_the_commit_run_with_the_error(trained_runs, built, tmp_path):
    runs = broken_checkpoint(trained_runs, tmp_path)
    log = run_kernel(
        KERNEL,
        "--comp",
        trained_runs.competition,
        "--runs",
        runs,
        "--build",
        built,
        check=False,
    )

    assert re.search(r"run failed: cell \d+ failed:\n", log) and "not a readable checkpoint" in log
    out = runs / f"{KERNEL}.failed"
    assert f"the whole traceback: {out / KERNEL}.ipynb" in log and not (runs / KERNEL).exists()
    status = json.loads((out / "run_status.json").read_text())
    assert status["fallback"] is True and "model.pt: not a readable checkpoint" in status["error"]
    assert "the commit run stops here: fix the plan before submitting" in notebook_output(out)
    assert "Traceback (most recent call last)" not in notebook_output(out), "shown once: as the cell's error"
    assert not (out / "timings.json").exists(), "the notebook stopped at the failure"
    validate_submission(out / "submission.csv", pd.read_csv(trained_runs.competition / "test.csv").posting_id)


def test_an_unreadable_checkpoint_leaves_the_fallback_submission_in_the_scoring_rerun(
    trained_runs, built, hidden, tmp_path
):
    runs = broken_checkpoint(trained_runs, tmp_path)
    log = run_kernel(KERNEL, "--comp", hidden, "--runs", runs, "--build", built, check=False)

    assert "a stage failed and the kernel kept its fallback submission" in log and not re.search(
        r"cell \d+ failed", log
    )
    out = runs / f"{KERNEL}.failed"
    status = json.loads((out / "run_status.json").read_text())
    assert status["fallback"] is True and "model.pt: not a readable checkpoint" in status["error"]
    assert "the fallback submission (TF-IDF and identical titles) is kept" in notebook_output(out)
    assert "Traceback (most recent call last)" in notebook_output(out), "the rerun goes on, so it prints the failure"
    assert (out / "timings.json").is_file(), "the notebook ran to its end"
    validate_submission(out / "submission.csv", pd.read_csv(hidden / "test.csv").posting_id)


def previous_outputs(runs: Path) -> dict[str, bytes]:
    """Stand-in for the last good outputs of the kernel in runs/: a file there, by name and content."""
    (runs / KERNEL).mkdir(parents=True)
    (runs / KERNEL / "submission.csv").write_text("posting_id,matches\nlast,good\n")
    return {"submission.csv": b"posting_id,matches\nlast,good\n"}


def kept(runs: Path) -> dict[str, bytes]:
    """The files of runs/<kernel>/, by name and content."""
    return {path.name: path.read_bytes() for path in (runs / KERNEL).iterdir()}


def bad_competition(source: Path, folder: Path) -> Path:
    """A copy of a competition folder (its image folders linked) to spoil."""
    folder.mkdir(parents=True)
    for path in source.iterdir():
        if path.is_dir():
            (folder / path.name).symlink_to(path.resolve(), target_is_directory=True)
        else:
            shutil.copy(path, folder / path.name)
    return folder


def latin1_title(comp: Path) -> None:
    """A test.csv row whose title is in latin-1, as a spreadsheet may save it."""
    with open(comp / "test.csv", "ab") as file:
        file.write("test_x,x.jpg,ff00ff00ff00ff00,Caf\u00e9 latte\n".encode("latin-1"))


def fractional_label(comp: Path) -> None:
    """A train.csv row whose label_group is 1.5."""
    with open(comp / "train.csv", "a") as file:
        file.write("train_x,x.jpg,ff00ff00ff00ff00,Susu,1.5\n")


def repeated_posting(comp: Path) -> None:
    """test.csv's first row again, at its end."""
    lines = (comp / "test.csv").read_text().splitlines()
    (comp / "test.csv").write_text("\n".join(lines + lines[1:2]) + "\n")


@pytest.mark.parametrize(
    "spoil, message",
    [
        (
            latin1_title,
            "{comp}/test.csv: read as utf-8, the encoding of the competition's files, but byte 0xe9 on line 5 is not "
            "utf-8; convert it, e.g. `iconv -f latin1 -t utf-8 {comp}/test.csv -o fixed.csv`",
        ),
        (fractional_label, "{comp}/train.csv: line {last} has label_group '1.5'; it must be an integer"),
        (repeated_posting, "{comp}/test.csv: line 5 repeats posting_id"),
    ],
    ids=["latin-1 test.csv", "label_group 1.5", "repeated posting_id"],
)
def test_a_bad_competition_file_fails_naming_the_users_file_and_line_and_keeps_the_last_outputs(
    trained_runs, built, tmp_path, spoil, message
):
    comp = bad_competition(trained_runs.competition, tmp_path / "my-comp")
    spoil(comp)
    runs = runs_folder(tmp_path / "runs", trained_runs, two_model_plan(trained_runs))
    before = previous_outputs(runs)
    result = subprocess.run(
        [sys.executable, "-m", "tools.local.run_kernel", KERNEL, "--comp", comp, "--runs", runs, "--build", built],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )

    assert result.returncode == 1
    last = len((comp / "train.csv").read_text().splitlines())
    expected = message.format(comp=comp, last=last)
    assert expected in result.stderr, result.stderr
    assert "kaggle-input-" not in result.stdout + result.stderr, "the user's folder, not the temporary mount"
    assert re.search(
        r"where \(the notebook's cells and lib; other libraries folded\):\n  cell \d+ \(kernels/", result.stderr
    )
    assert (
        f"this run's outputs are in {runs / KERNEL}.failed/; the last good outputs stay in {runs / KERNEL}/"
        in result.stderr
    )
    assert kept(runs) == before
    assert (runs / f"{KERNEL}.failed" / f"{KERNEL}.ipynb").is_file() and not (runs / f"{KERNEL}.running").exists()


def test_a_header_only_test_csv_gives_a_header_only_submission(trained_runs, built, tmp_path):
    comp = bad_competition(trained_runs.competition, tmp_path / "my-comp")
    (comp / "test.csv").write_text((comp / "test.csv").read_text().splitlines()[0] + "\n")
    runs = runs_folder(tmp_path / "runs", trained_runs, two_model_plan(trained_runs))
    log = run_kernel(KERNEL, "--comp", comp, "--runs", runs, "--build", built)

    out = runs / KERNEL
    assert "test.csv holds no postings (only its header): the submission will hold only its header" in log
    assert "the commit run (CV): KAGGLE_IS_COMPETITION_RERUN is not set, and test.csv holds 0 rows" in log
    assert (out / "submission.csv").read_text() == "posting_id,matches\n"
    assert json.loads((out / "run_status.json").read_text()) == {"fallback": False}
    assert (out / "cv_scores.json").is_file(), "the commit run still evaluates the plan"


def test_a_missing_train_images_folder_fails_the_commit_run_naming_it(trained_runs, built, tmp_path):
    comp = bad_competition(trained_runs.competition, tmp_path / "my-comp")
    (comp / "train_images").unlink()
    runs = runs_folder(tmp_path / "runs", trained_runs, two_model_plan(trained_runs))
    before = previous_outputs(runs)
    log = run_kernel(KERNEL, "--comp", comp, "--runs", runs, "--build", built, check=False)

    assert f"ImagesUnreadable: {comp}/train_images: no such image folder" in log
    assert "the commit run stops here" in log and "images unreadable" not in log
    assert kept(runs) == before
    status = json.loads((runs / f"{KERNEL}.failed" / "run_status.json").read_text())
    assert status["fallback"] and status["error"].startswith("ImagesUnreadable: ")


def test_a_mostly_unreadable_test_image_folder_keeps_the_fallback_in_the_scoring_rerun_with_one_line(
    trained_runs, built, hidden, tmp_path
):
    comp = bad_competition(hidden, tmp_path / "my-hidden")
    (comp / "test_images").unlink()
    (comp / "test_images").mkdir()
    test = pd.read_csv(comp / "test.csv")
    for name in test.image[:3]:
        (comp / "test_images" / name).write_bytes(b"\xff\xd8\xff\xe0 truncated")
    runs = runs_folder(tmp_path / "runs", trained_runs, two_model_plan(trained_runs))
    before = previous_outputs(runs)
    log = run_kernel(KERNEL, "--comp", comp, "--runs", runs, "--build", built, check=False)

    folder = comp / "test_images"
    line = f"{len(test)} of {len(test)} images unreadable in {folder} (grey placeholders stand in): {test.image[0]}: "
    assert line in log and all(name not in log for name in test.image[3:]), "one line, not a line per image"
    assert "the scoring rerun (no CV): KAGGLE_IS_COMPETITION_RERUN is not set, and test.csv holds" in log
    assert "a stage failed and the kernel kept its fallback submission" in log
    assert kept(runs) == before
    failed = runs / f"{KERNEL}.failed"
    validate_submission(failed / "submission.csv", test.posting_id)
    assert (failed / "timings.json").is_file(), "the rerun went on to its end"
