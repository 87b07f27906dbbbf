"""Inputs made or fetched here: the synthetic sample, timing sample, public matching data, pretrained weights."""
