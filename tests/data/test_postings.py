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
        ("train_1,a.jpg,ff,x,seven\n", "line 2 has label_group 'seven'; it must be an integer"),
        ("train_1,a.jpg,ff,x,7\ntrain_2,b.jpg,ff,y,1.5\n", "line 3 has label_group '1.5'; it must be an integer"),
        ("train_1,a.jpg,ff,x,7\ntrain_2,b.jpg,ff,y,\n", "line 3 has label_group ''; it must be an integer"),
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


def test_text_cells_are_text_and_only_an_empty_cell_is_empty(tmp_path):
    titles = ["NaN", "NA", "None", "null", "n/a", "", "#N/A"]
    path = tmp_path / "test.csv"
    rows = [f"test_{i},{i}.jpg,,{title}" for i, title in enumerate(titles)]
    path.write_text("posting_id,image,image_phash,title\n" + "\n".join(rows) + "\n")
    frame = read_postings(path)
    assert list(frame.title) == titles
    assert list(frame.image_phash) == [""] * len(titles)
    assert list(frame.posting_id) == [f"test_{i}" for i in range(len(titles))]


def test_a_file_not_in_utf8_names_the_encoding_the_line_and_how_to_convert(tmp_path):
    path = tmp_path / "test.csv"
    path.write_bytes(
        "posting_id,image,image_phash,title\ntest_1,a.jpg,ff,Susu\ntest_2,b.jpg,ff,Caf\u00e9\n".encode("latin-1")
    )
    with pytest.raises(ValueError) as error:
        read_postings(path)
    message = str(error.value)
    assert message.startswith(f"{path}: read as utf-8")
    assert "byte 0xe9 on line 3 is not utf-8" in message and f"iconv -f latin1 -t utf-8 {path}" in message


def test_a_header_only_file_reads_as_no_postings(tmp_path):
    path = tmp_path / "test.csv"
    path.write_text("posting_id,image,image_phash,title\n")
    frame = read_postings(path)
    assert frame.empty and list(frame.columns) == ["posting_id", "image", "image_phash", "title"]
