"""The Python environments: each lock checked against its list, the wheels Kaggle's image lacks, the image lists."""
