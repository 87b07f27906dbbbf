"""Kaggle through the `kaggle` CLI: credentials, the competition's data, pushes, datasets and submissions, and the
pre-flight before a push."""
