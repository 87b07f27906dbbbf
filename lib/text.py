"""Title text: normalisation (escaped bytes, case, units) and TF-IDF neighbours."""

import re

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

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
UNIT_KINDS = {"ml": ("volume", 1), "l": ("volume", 1000), "g": ("mass", 1), "kg": ("mass", 1000), "pcs": ("count", 1)}
UNIT_KINDS |= {"mm": ("length", 1), "cm": ("length", 10), "m": ("length", 1000)}
SIZES = {"xs", "s", "m", "l", "xl", "xxl", "xxxl", "2xl", "3xl"}
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


def quantities(normalised: str) -> dict[str, frozenset]:
    """Amounts by kind in a normalised title, in base units (ml, g, mm, pieces) and clothing sizes."""
    found: dict[str, set] = {}
    tokens = normalised.split()
    for before, token in zip([""] + tokens, tokens):
        number = re.fullmatch(r"\d+(?:\.\d+)?", before)
        if number and token in UNIT_KINDS:
            kind, scale = UNIT_KINDS[token]
            found.setdefault(kind, set()).add(round(float(before) * scale, 6))
        elif token in SIZES and not number:
            found.setdefault("size", set()).add(token)
    return {kind: frozenset(amounts) for kind, amounts in found.items()}


def quantities_differ(first: dict[str, frozenset], second: dict[str, frozenset]) -> bool:
    """True when both titles state amounts of the same kind and the amounts are not the same."""
    return any(first[kind] != second[kind] for kind in first.keys() & second.keys())


def tfidf_vectors(titles: list[str], corpus: list[str] | None = None, analyzer: str = "word"):
    """L2-normalised TF-IDF rows (scipy CSR, float32) of titles, over words or character 2-4-grams ("char_wb").

    The vocabulary and idf come from `corpus` (default: the titles), e.g. train and test titles together so that
    a small test set gets a sound idf.
    """
    ngrams = (1, 1) if analyzer == "word" else (2, 4)
    vectorizer = TfidfVectorizer(analyzer=analyzer, ngram_range=ngrams, token_pattern=r"(?u)\b\w+\b", dtype=np.float32)
    return vectorizer.fit(titles if corpus is None else corpus).transform(titles)
