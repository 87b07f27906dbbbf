"""Benchmarks of lib's stages on synthetic data (synthetic.py, shared), and the title plan's report on real data."""
