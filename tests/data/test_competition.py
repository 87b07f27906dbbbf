from lib.data import competition


def test_the_scoring_rerun_is_known_by_kaggles_variable_where_set_else_by_the_test_size(monkeypatch):
    monkeypatch.delenv(competition.RERUN_VARIABLE, raising=False)
    assert competition.scoring_rerun(3) == (
        False,
        "KAGGLE_IS_COMPETITION_RERUN is not set, and test.csv holds 3 rows: no more than the commit run's 3",
    )
    assert competition.scoring_rerun(4) == (
        True,
        "KAGGLE_IS_COMPETITION_RERUN is not set, and test.csv holds 4 rows: more than the commit run's 3",
    )
    assert not competition.scoring_rerun(0)[0], "a header-only test.csv is no rerun"
    monkeypatch.setenv(competition.RERUN_VARIABLE, "True")
    assert competition.scoring_rerun(3) == (True, "KAGGLE_IS_COMPETITION_RERUN is set to 'True'")
    for value in ["", "0", "False", "no"]:
        monkeypatch.setenv(competition.RERUN_VARIABLE, value)
        assert competition.scoring_rerun(70000) == (False, f"KAGGLE_IS_COMPETITION_RERUN is set to {value!r}")
