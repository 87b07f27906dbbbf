"""What the competition fixes: its slug, the size of test.csv in the commit run and in the scoring rerun, and how a run
knows which of the two it is."""

import os

COMPETITION = "shopee-product-matching"
VISIBLE_TEST_ROWS = 3  # test.csv in the commit run (and in the downloaded data)
HIDDEN_TEST_ROWS = 70000  # about the size of test.csv in the scoring rerun
RERUN_VARIABLE = "KAGGLE_IS_COMPETITION_RERUN"  # set by Kaggle in the scoring rerun
FALSE_VALUES = {"", "0", "false", "no"}


def scoring_rerun(test_rows: int) -> tuple[bool, str]:
    """Whether this run is Kaggle's scoring rerun, and why: by Kaggle's KAGGLE_IS_COMPETITION_RERUN where it is set,
    else by whether test.csv holds more than the commit run's visible rows."""
    value = os.environ.get(RERUN_VARIABLE)
    if value is not None:
        rerun = value.strip().lower() not in FALSE_VALUES
        return rerun, f"{RERUN_VARIABLE} is set to {value!r}"
    more = "more" if test_rows > VISIBLE_TEST_ROWS else "no more"
    return test_rows > VISIBLE_TEST_ROWS, (
        f"{RERUN_VARIABLE} is not set, and test.csv holds {test_rows} rows: {more} than the commit run's "
        f"{VISIBLE_TEST_ROWS}"
    )
