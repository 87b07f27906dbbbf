"""Exact nearest neighbours on any device, query expansion / INB, combined embeddings."""
