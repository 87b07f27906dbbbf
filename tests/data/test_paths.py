"""lib.data.paths: a source found by its slug in every layout Kaggle mounts it in, or an error saying what is there."""

import pytest

from lib.data import paths

COMPETITION = "shopee-product-matching"


@pytest.fixture
def root(tmp_path, monkeypatch):
    """An empty input root, standing in for /kaggle/input."""
    monkeypatch.setenv("KERNEL_INPUT_DIR", str(tmp_path / "input"))
    (tmp_path / "input").mkdir()
    return tmp_path / "input"


@pytest.mark.parametrize(
    "place, slug",
    [
        ("competitions/shopee-product-matching", COMPETITION),
        ("datasets/alice/all-minilm-l6-v2", "all-minilm-l6-v2"),
        ("notebooks/bob/shopee-train-demo", "shopee-train-demo"),
        ("shopee-train-demo", "shopee-train-demo"),
        ("models/google/siglip/transformers/base-patch16-256-multilingual/1", "base-patch16-256-multilingual"),
    ],
)
def test_a_source_is_found_in_each_layout(root, place, slug):
    (root / place).mkdir(parents=True)
    (root / "datasets" / "carol" / "other-data").mkdir(parents=True)
    assert paths.input_dir(slug) == root / place
    assert paths.attached_sources() == {slug: root / place, "other-data": root / "datasets" / "carol" / "other-data"}


def test_the_current_layout_comes_before_the_flat_one_and_files_are_not_sources(root):
    for place in ["competitions/shopee-product-matching", "shopee-product-matching", "notebooks/bob/run-a"]:
        (root / place).mkdir(parents=True)
    (root / "notes.txt").write_text("a file, not a source")
    assert paths.input_dir(COMPETITION) == root / "competitions" / COMPETITION
    assert paths.attached_sources() == {
        COMPETITION: root / "competitions" / COMPETITION,
        "run-a": root / "notebooks/bob/run-a",
    }


def test_a_missing_source_is_named_with_what_the_root_holds_two_levels_deep(root):
    (root / "datasets" / "alice" / "all-minilm-l6-v2" / "deeper").mkdir(parents=True)
    (root / "flat-source").mkdir()
    (root / "flat-source" / "train.csv").write_text("x")
    with pytest.raises(FileNotFoundError) as caught:
        paths.input_dir("shopee-train-demo")
    message = str(caught.value)
    assert message.startswith("source 'shopee-train-demo' is not attached: none of competitions/shopee-train-demo, ")
    assert f"is under {root}, which holds:\n  datasets/\n    alice/\n  flat-source/\n    train.csv\n" in message
    assert "all-minilm-l6-v2" not in message and "deeper" not in message
    assert "kernel.yaml" in message and "rules" not in message
    with pytest.raises(FileNotFoundError, match="competition data only after the competition's rules were accepted"):
        paths.input_dir(COMPETITION)


def test_a_missing_root_or_an_empty_one_is_said(root, monkeypatch):
    with pytest.raises(FileNotFoundError, match=r"which holds:\n  \(nothing\)\n"):
        paths.input_dir("anything")
    monkeypatch.setenv("KERNEL_INPUT_DIR", str(root / "absent"))
    with pytest.raises(FileNotFoundError, match=r"which holds:\n  \(no such folder\)\n"):
        paths.input_dir("anything")
    assert paths.attached_sources() == {}


def test_a_long_folder_is_listed_in_part(root):
    for number in range(paths.SHOWN + 3):
        (root / f"file-{number:02d}.txt").write_text("x")
    message = paths.not_attached("missing")
    assert "which holds:\n  file-00.txt\n" in message
    assert f"  file-{paths.SHOWN - 1:02d}.txt\n  ... and 3 more\n" in message
    assert f"file-{paths.SHOWN:02d}" not in message


def test_one_slug_from_two_owners_is_refused_naming_both(root):
    (root / "datasets" / "alice" / "weights").mkdir(parents=True)
    (root / "notebooks" / "bob" / "weights").mkdir(parents=True)
    with pytest.raises(ValueError) as caught:
        paths.input_dir("weights")
    message = str(caught.value)
    assert f"{root}/datasets/alice/weights and {root}/notebooks/bob/weights (owners alice, bob)" in message
    with pytest.raises(ValueError, match="source 'weights' is attached more than once"):
        paths.attached_sources()
