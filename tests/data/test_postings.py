import pytest

from lib.data.postings import read_postings

HEADER = "posting_id,image,image_phash,title,label_group\n"


def test_reads_and_fills_empty_titles(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text(HEADER + "train_1,a.jpg,ff00ff00ff00ff00,,7\ntrain_2,b.jpg,ff00ff00ff00ff01,Susu 1L,7\n")
    frame = read_postings(path, labelled=True)
    assert list(frame.title) == ["", "Susu 1L"]
    assert frame.label_group.dtype.kind == "i"


@pytest.mark.parametrize(
    "body, message",
    [
        ("train_1,a.jpg,ff,x,7\ntrain_1,b.jpg,ff,y,7\n", "line 3 repeats posting_id train_1"),
        ("train_1,a.jpg,ff,x,7\ntrain_2,,ff,y,7\n", "line 3 has an empty image"),
        ("train_1,a.jpg,ff,x,seven\n", "line 2 has label_group 'seven'"),
    ],
)
def test_bad_rows_are_named(tmp_path, body, message):
    path = tmp_path / "train.csv"
    path.write_text(HEADER + body)
    with pytest.raises(ValueError, match=message):
        read_postings(path, labelled=True)


def test_missing_columns_are_named(tmp_path):
    path = tmp_path / "test.csv"
    path.write_text("posting_id,title\ntest_1,x\n")
    with pytest.raises(ValueError, match=r"missing columns \['image', 'image_phash'\]"):
        read_postings(path)
