"""Candidate pairs, matching rules, the metric, the threshold and ensemble searches, their plots."""
