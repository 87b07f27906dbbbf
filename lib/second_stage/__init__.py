"""The second stage after the matching rules: pair features, the pair classifier, scoring, and the graph steps."""
