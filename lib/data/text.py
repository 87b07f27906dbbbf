"""Title text: normalisation (escaped bytes, case, units), model-code tokens and TF-IDF vectors."""

import re

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize

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
# a number (not inside a model code such as k2m) and its unit
NUMBER_UNIT = re.compile(r"(?<![\w.,])(\d+(?:[.,]\d+)?)\s*(" + "|".join(sorted(UNITS, key=len, reverse=True)) + r")\b")
NUMBER_THEN_UNIT = re.compile(r"(\d) (" + "|".join(sorted(UNIT_KINDS, key=len, reverse=True)) + r")\b")
TOKEN = re.compile(r"\w(?:[\w./-]*\w)?")
# The most work a TF-IDF self-search may take: sum over the kept terms of df^2 (df: corpus titles holding the term),
# the number of products of x @ x.T. 10^10 took lib.neighbours.sparse.sparse_neighbors 56 s and 146 MB on 70,000
# synthetic titles' char n-grams on 2 shared cores (docs/results.md, `python -m tools.bench.knn --char`); the time
# grows about linearly with it.
PRODUCT_BUDGET = 10**10


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


def code_tokens(normalised: str) -> list[str]:
    """Tokens of a normalised title that carry a digit: model codes (a52, pslx350h, 8/128gb), numbers joined with
    their unit (400g) and bare numbers."""
    joined = NUMBER_THEN_UNIT.sub(r"\1\2", normalised)
    return [token for token in TOKEN.findall(joined) if re.search(r"\d", token)]


# TfidfVectorizer settings of each analyzer: words, character 2-4-grams within words, model-code tokens.
ANALYZERS = {
    "word": {"token_pattern": r"(?u)\b\w+\b"},
    "char_wb": {"analyzer": "char_wb", "ngram_range": (2, 4)},
    "code": {"analyzer": code_tokens},
}


def affordable_terms(frequency: np.ndarray) -> np.ndarray:
    """Mask of the terms kept: the most frequent go first, all terms of one document frequency together, until the
    kept terms' sum of squared frequencies (a self-search's products) is at most PRODUCT_BUDGET."""
    levels, terms = np.unique(frequency.astype(np.int64), return_counts=True)
    cost = np.cumsum(terms * levels**2)
    return frequency <= levels[cost <= PRODUCT_BUDGET].max(initial=0)


def tfidf_vectors(titles: list[str], corpus: list[str] | None = None, analyzer: str = "word"):
    """L2-normalised TF-IDF rows (scipy CSR, float32) of titles over the terms of an analyzer (`ANALYZERS`) that
    fit the product budget; a title with no kept term is a zero row (every row is, when no corpus title has a term).

    The vocabulary, idf and the terms dropped (`affordable_terms`) come from `corpus` (default: the titles), e.g.
    train and test titles together, so that a small test set gets a sound idf and every set of titles vectorised
    on one corpus shares one vocabulary.
    """
    vectorizer = TfidfVectorizer(dtype=np.float32, norm=None, **ANALYZERS[analyzer])
    corpus = titles if corpus is None else corpus
    if not any(map(vectorizer.build_analyzer(), corpus)):
        return sp.csr_matrix((len(titles), 0), dtype=np.float32)
    fitted = vectorizer.fit_transform(corpus)
    kept = affordable_terms(np.bincount(fitted.indices, minlength=fitted.shape[1]))
    return normalize(vectorizer.transform(titles)[:, kept])
