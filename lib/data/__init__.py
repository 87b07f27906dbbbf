"""Postings and their files: input paths, train.csv, images, titles, batches, submissions, training runs' files."""
