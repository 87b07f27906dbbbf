"""What the competition fixes: its slug and the size of test.csv in the commit run and in the scoring rerun."""

COMPETITION = "shopee-product-matching"
VISIBLE_TEST_ROWS = 3  # test.csv in the commit run (and in the downloaded data)
HIDDEN_TEST_ROWS = 70000  # about the size of test.csv in the scoring rerun
