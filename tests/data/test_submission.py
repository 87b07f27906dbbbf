import pytest

from lib.data.submission import validate_submission, write_submission

TEST_IDS = ["test_1", "test_2", "test_3"]


def write(tmp_path, text):
    path = tmp_path / "submission.csv"
    path.write_text(text)
    return path


def test_written_submission_is_valid(tmp_path):
    path = tmp_path / "submission.csv"
    write_submission(path, TEST_IDS, [["test_1", "test_2"], ["test_2", "test_1"], ["test_3"]])
    validate_submission(path, TEST_IDS)
    assert path.read_text().splitlines()[0] == "posting_id,matches"


@pytest.mark.parametrize(
    "text, message",
    [
        ("id,matches\ntest_1,test_1\n", "columns"),
        ("posting_id,matches\ntest_1,test_1\ntest_2,test_2\n", "have no row"),
        ("posting_id,matches\ntest_1,test_2\ntest_2,test_2\ntest_3,test_3\n", "line 2, posting test_1 does not match"),
        ("posting_id,matches\ntest_1,test_1\ntest_2,test_2 test_9\ntest_3,test_3\n", "line 3.*unknown posting"),
        ("posting_id,matches\ntest_1,test_1\ntest_1,test_1\ntest_2,test_2\ntest_3,test_3\n", "appears twice"),
        ("posting_id,matches\ntest_1,test_1\ntest_2,test_2\ntest_3,test_3\ntest_4,test_4\n", "not a test posting"),
        ("posting_id,matches\ntest_1,test_1 test_1\ntest_2,test_2\ntest_3,test_3\n", "repeats a match"),
    ],
)
def test_each_kind_of_bad_file_is_refused(tmp_path, text, message):
    with pytest.raises(ValueError, match=message):
        validate_submission(write(tmp_path, text), TEST_IDS)


def test_more_than_fifty_matches_is_refused(tmp_path):
    ids = [f"test_{i}" for i in range(60)]
    rows = [f"{i},{' '.join(ids)}" if i == ids[0] else f"{i},{i}" for i in ids]
    with pytest.raises(ValueError, match="60 matches, more than 50"):
        validate_submission(write(tmp_path, "posting_id,matches\n" + "\n".join(rows) + "\n"), ids)
