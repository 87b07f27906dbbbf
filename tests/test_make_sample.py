"""Tests for tools.data.make_sample: layout, schema, determinism, group sizes, phashes and the built-in hard cases."""

import hashlib
import itertools
import re
import subprocess
import sys
from pathlib import Path

import imagehash
import pandas as pd
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
ROWS = 400
OUTPUTS = {"train.csv", "test.csv", "sample_submission.csv", "train_images", "test_images"}
SIZE_WORDS = {"s", "m", "l", "xl", "xxl"}


def generate(out: Path, seed: int = 0, hidden: bool = False) -> subprocess.CompletedProcess:
    """Run the generator into out with ROWS train rows."""
    command = [
        sys.executable,
        "-m",
        "tools.data.make_sample",
        "--out",
        str(out),
        "--seed",
        str(seed),
        "--rows",
        str(ROWS),
    ]
    return subprocess.run(command + ["--hidden"] * hidden, capture_output=True, text=True, check=False, cwd=ROOT)


def solution_path(out: Path) -> Path:
    """The labels file written next to the output folder."""
    return out.parent / f"{out.name}.solution.csv"


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def digest(out: Path) -> dict[str, str]:
    """SHA-256 of every file under out (keyed by relative path) and of its solution file."""
    hashes = {str(p.relative_to(out)): sha256(p) for p in out.rglob("*") if p.is_file()}
    return hashes | {"solution": sha256(solution_path(out))}


def tokens(title: str) -> set[str]:
    """Lowercased alphanumeric words of a title."""
    return set(re.findall(r"[a-z0-9]+", title.lower()))


def without_amounts(title: str) -> tuple[str, ...]:
    """Title words with every number and clothing size replaced by '#'."""
    words = re.findall(r"[a-z0-9]+", title.lower())
    return tuple("#" if w in SIZE_WORDS else re.sub(r"\d+", "#", w) for w in words)


def run_ok(out: Path, seed: int = 0, hidden: bool = False) -> Path:
    """Generate into out, fail the test with the tool's output if it fails, and return out."""
    result = generate(out, seed, hidden)
    assert result.returncode == 0, result.stdout + result.stderr
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """A folder for all generator runs of this module."""
    return tmp_path_factory.mktemp("runs")


@pytest.fixture(scope="module")
def sample(runs) -> Path:
    """The default (3 visible test rows) sample for seed 0."""
    return run_ok(runs / "sample")


@pytest.fixture(scope="module")
def hidden(runs) -> Path:
    """The --hidden sample for seed 0."""
    return run_ok(runs / "hidden", hidden=True)


@pytest.fixture(scope="module")
def train(sample) -> pd.DataFrame:
    """train.csv of the default sample."""
    return pd.read_csv(sample / "train.csv")


@pytest.fixture(scope="module")
def visible(sample) -> pd.DataFrame:
    """test.csv of the default sample."""
    return pd.read_csv(sample / "test.csv")


def test_layout(sample, train, visible):
    """The folder holds exactly the competition files, and the images named in the CSVs."""
    assert {p.name for p in sample.iterdir()} == OUTPUTS
    assert {p.name for p in (sample / "train_images").iterdir()} == set(train["image"])
    assert {p.name for p in (sample / "test_images").iterdir()} == set(visible["image"])
    assert solution_path(sample).is_file()


def test_schema(sample, train, visible):
    """Columns, dtypes and id formats are those of the real files; ids are unique."""
    assert list(train.columns) == ["posting_id", "image", "image_phash", "title", "label_group"]
    assert list(visible.columns) == ["posting_id", "image", "image_phash", "title"]
    for column in ["posting_id", "image", "image_phash", "title"]:
        assert pd.api.types.is_string_dtype(train[column]) and pd.api.types.is_string_dtype(visible[column])
    assert train["label_group"].dtype == "int64"
    assert train["posting_id"].str.fullmatch(r"train_\d+").all()
    assert visible["posting_id"].str.fullmatch(r"test_\d+").all()
    both = pd.concat([train, visible])
    assert both["image"].str.fullmatch(r"[0-9a-f]{32}\.jpg").all()
    assert both["image_phash"].str.fullmatch(r"[0-9a-f]{16}").all()
    assert both["posting_id"].is_unique and both["image"].is_unique
    assert len(visible) == 3 and abs(len(train) - ROWS) <= 60


def test_sample_submission_and_solution(sample, visible):
    """sample_submission matches each test posting to itself; the solution labels exactly the test rows."""
    submission = pd.read_csv(sample / "sample_submission.csv")
    assert list(submission.columns) == ["posting_id", "matches"]
    assert list(submission["posting_id"]) == list(visible["posting_id"])
    assert (submission["matches"] == submission["posting_id"]).all()
    solution = pd.read_csv(solution_path(sample))
    assert list(solution.columns) == ["posting_id", "label_group"] and solution["label_group"].dtype == "int64"
    assert set(solution["posting_id"]) == set(visible["posting_id"])


def test_same_seed_same_bytes(sample, runs):
    """A second run with the same seed writes byte-identical files."""
    again = run_ok(runs / "again")
    assert digest(again) == digest(sample)


def test_other_seed_other_data(train, runs):
    """Another seed gives other titles and images."""
    other = pd.read_csv(run_ok(runs / "other", seed=1) / "train.csv")
    assert not set(other["title"]) >= set(train["title"])
    assert set(other["image_phash"]) != set(train["image_phash"])


def test_group_sizes(train):
    """Group sizes stay within 2..50 with the competition's skew towards pairs."""
    sizes = train["label_group"].value_counts()
    assert sizes.between(2, 50).all()
    assert 0.40 <= (sizes == 2).mean() <= 0.70
    assert sizes.median() <= 3 and sizes.max() >= 30


def test_phash_column(sample, train, visible):
    """image_phash is imagehash.phash of the written JPEG."""
    for folder, frame in (("train_images", train), ("test_images", visible)):
        for image, phash in zip(frame["image"], frame["image_phash"]):
            with Image.open(sample / folder / image) as im:
                assert str(imagehash.phash(im)) == phash, image


def test_phash_shared_across_groups(train):
    """Some image content (phash) appears in two different groups, and phashes vary inside groups."""
    assert (train.groupby("image_phash")["label_group"].nunique() > 1).any()
    assert (train.groupby("label_group")["image_phash"].nunique() > 1).any()


def test_titles_differing_only_in_amount(train):
    """Two groups have titles that differ only in a number or a clothing size."""
    keyed = train.assign(key=train["title"].map(without_amounts))
    found = [
        (a, b)
        for _, rows in keyed.groupby("key")
        for a, b in itertools.combinations(rows.itertuples(), 2)
        if a.label_group != b.label_group and a.title != b.title
    ]
    assert found


def test_group_with_unrelated_titles(train):
    """Some group holds two titles without a common word."""
    assert any(
        not tokens(a) & tokens(b)
        for _, titles in train.groupby("label_group")["title"]
        for a, b in itertools.combinations(titles, 2)
    )


def test_hidden_test_holds_all_held_out_groups(sample, hidden, train):
    """--hidden: test.csv holds whole held-out groups, none in train; the solution covers it exactly."""
    test = pd.read_csv(hidden / "test.csv")
    solution = pd.read_csv(solution_path(hidden))
    assert (hidden / "train.csv").read_bytes() == (sample / "train.csv").read_bytes()
    assert set(solution["posting_id"]) == set(test["posting_id"]) and solution["posting_id"].is_unique
    assert not set(solution["label_group"]) & set(train["label_group"])
    assert solution["label_group"].value_counts().min() >= 2
    assert 0.05 <= len(test) / (len(test) + len(train)) <= 0.2
    assert set(pd.read_csv(sample / "test.csv")["posting_id"]) <= set(test["posting_id"])
    assert {p.name for p in (hidden / "test_images").iterdir()} == set(test["image"])


def test_refuses_folder_with_foreign_files(runs):
    """The tool never deletes files it did not write."""
    out = runs / "foreign"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    assert generate(out).returncode != 0
    assert (out / "notes.txt").read_text() == "keep me"
