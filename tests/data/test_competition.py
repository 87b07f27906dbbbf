from lib.data import competition


def test_the_scoring_rerun_is_known_by_kaggles_variable_or_by_the_test_size(monkeypatch):
    monkeypatch.delenv(competition.RERUN_VARIABLE, raising=False)
    assert not competition.scoring_rerun(3) and competition.scoring_rerun(4)
    monkeypatch.setenv(competition.RERUN_VARIABLE, "True")
    assert competition.scoring_rerun(3), "a hidden test as small as the visible one is still the rerun"
