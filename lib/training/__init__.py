"""Experiments, folds, the training loop and its tracking."""
