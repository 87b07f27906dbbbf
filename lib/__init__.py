"""Shared modules that build.py inlines into each Kaggle kernel."""
