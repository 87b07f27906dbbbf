"""What the competition fixes: its slug and the size of test.csv in the commit run and in the scoring rerun."""

import os

COMPETITION = "shopee-product-matching"
VISIBLE_TEST_ROWS = 3  # test.csv in the commit run (and in the downloaded data)
HIDDEN_TEST_ROWS = 70000  # about the size of test.csv in the scoring rerun
RERUN_VARIABLE = "KAGGLE_IS_COMPETITION_RERUN"  # set by Kaggle in the scoring rerun


def scoring_rerun(test_rows: int) -> bool:
    """Whether this run is Kaggle's scoring rerun: Kaggle says so, or test.csv holds more than the visible rows."""
    return bool(os.environ.get(RERUN_VARIABLE)) or test_rows > VISIBLE_TEST_ROWS
