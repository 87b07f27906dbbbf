"""lib.models.sentence: each family's pooling and prefix against a naive computation on a tiny saved model."""

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from lib.models.sentence import embed_texts
from tests.tiny_encoders import TITLES, tiny_bert


def naive(folder, texts: list[str], pooling: str) -> np.ndarray:
    """Each text's vector by a plain loop over its own tokens (no padding), L2-normalised."""
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder).eval()
    rows = []
    for text in texts:
        tokens = tokenizer(text, truncation=True, max_length=64, return_tensors="pt")
        with torch.no_grad():
            output = model(**tokens)
        hidden = output.last_hidden_state[0]
        vector = {"mean": hidden.mean(0), "cls": hidden[0], "pooler": output.pooler_output[0]}[pooling]
        rows.append((vector / vector.norm()).numpy())
    return np.stack(rows)


@pytest.mark.parametrize(
    "pooling, prefix",
    [("mean", ""), ("mean", "query: "), ("cls", ""), ("pooler", "")],
    ids=["minilm-mean", "e5-query-mean", "cls", "labse-pooler"],
)
def test_each_family_pools_as_its_model_card_says(tmp_path, pooling, prefix):
    folder = tiny_bert(tmp_path / "bert")
    vectors = embed_texts(TITLES, folder, pooling=pooling, prefix=prefix, batch_size=2, device=torch.device("cpu"))
    expected = naive(folder, [prefix + title for title in TITLES], pooling)
    assert vectors.shape == (len(TITLES), 32) and vectors.dtype == np.float32
    np.testing.assert_allclose(vectors, expected, atol=1e-5)
    if prefix:  # the prefix changes what is embedded
        assert not np.allclose(vectors, naive(folder, TITLES, pooling), atol=1e-3)


def test_the_defaults_are_the_masked_mean_without_prefix(tmp_path):
    folder = tiny_bert(tmp_path / "bert")
    default = embed_texts(TITLES, folder, batch_size=3, device=torch.device("cpu"))
    np.testing.assert_allclose(default, naive(folder, TITLES, "mean"), atol=1e-5)


def test_a_model_without_a_pooler_and_an_unknown_pooling_are_named(tmp_path):
    folder = tiny_bert(tmp_path / "distilbert", kind="distilbert")
    with pytest.raises(ValueError, match="distilbert: the model has no pooler .* use pooling 'mean' or 'cls'"):
        embed_texts(TITLES, folder, pooling="pooler", device=torch.device("cpu"))
    with pytest.raises(ValueError, match=r"pooling: 'max' is not one of \['mean', 'cls', 'pooler'\]"):
        embed_texts(TITLES, folder, pooling="max")
