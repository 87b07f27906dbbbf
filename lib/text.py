"""Title text: normalisation (escaped bytes, case, units) and TF-IDF neighbours."""

import re

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

from lib.knn import top_k_rows

ESCAPED_BYTES = re.compile(r"(?:\\x[0-9a-fA-F]{2})+")
UNITS = {
    "ml": "ml",
    "l": "l",
    "lt": "l",
    "ltr": "l",
    "liter": "l",
    "litre": "l",
    "g": "g",
    "gr": "g",
    "gram": "g",
    "grams": "g",
    "kg": "kg",
    "pcs": "pcs",
    "pc": "pcs",
    "pieces": "pcs",
    "cm": "cm",
    "mm": "mm",
    "m": "m",
}
NUMBER_UNIT = re.compile(r"(\d+(?:[.,]\d+)?)\s*(" + "|".join(sorted(UNITS, key=len, reverse=True)) + r")\b")


def decode_escaped_bytes(title: str) -> str:
    """Turn literal byte escapes such as `\\xe2\\x9d\\xa4` into the characters they encode."""

    def decode(match: re.Match) -> str:
        raw = bytes(int(pair, 16) for pair in match.group(0).split("\\x")[1:])
        return raw.decode("utf-8", errors="replace")

    return ESCAPED_BYTES.sub(decode, title)


def normalise_title(title: str) -> str:
    """Lower-case title with decoded bytes, numbers split from their units and units in one spelling."""
    title = decode_escaped_bytes(title).lower()
    title = NUMBER_UNIT.sub(lambda m: f" {m.group(1).replace(',', '.')} {UNITS[m.group(2)]} ", title)
    return " ".join(title.split())


def tfidf_neighbors(titles: list[str], *, k: int, threshold: float, analyzer: str = "word", chunk_size: int = 1024):
    """Cosine neighbours of titles over TF-IDF vectors, as `lib.knn.neighbors` returns them."""
    ngrams = (1, 1) if analyzer == "word" else (2, 4)
    vectors = TfidfVectorizer(analyzer=analyzer, ngram_range=ngrams, token_pattern=r"(?u)\b\w+\b").fit_transform(titles)
    vectors = vectors.astype(np.float32)
    chunks = []
    for start in range(0, vectors.shape[0], chunk_size):
        similarity = (vectors[start : start + chunk_size] @ vectors.T).toarray()
        chunks.append(top_k_rows(similarity, k, threshold))
    return tuple(np.concatenate(parts) for parts in zip(*chunks))
