"""lib.models.image_text: tiny CLIP and SigLIP folders; the preprocessing against the saved processor's own output, the
embeddings against a naive per-posting computation with the processor, and the folder errors."""

import json
import re

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoModel, AutoProcessor

from lib.data.images import placeholder
from lib.data.text import normalise_title
from lib.models.image_text import image_text_embeddings, image_transform
from tests.tiny_encoders import IMAGE_SIZES, image_text_folder, postings, tiny_bert

FAMILIES = ["clip", "siglip"]


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("hub_layout", [False, True], ids=["processor_config", "preprocessor_config"])
def test_preprocessing_gives_the_processors_own_numbers(tmp_path, family, hub_layout):
    folder = image_text_folder(tmp_path / family, family, hub_layout)
    transform, processor = image_transform(folder), AutoProcessor.from_pretrained(folder)
    rng = np.random.default_rng(1)
    for width, height in [*IMAGE_SIZES, (300, 7)]:
        pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        expected = processor(images=Image.fromarray(pixels), return_tensors="pt")["pixel_values"][0]
        ours = transform(image=pixels)["image"]
        assert ours.shape == expected.shape == (3, 32, 32)
        torch.testing.assert_close(ours, expected, atol=1e-5, rtol=0)


def naive(folder, family: str, frame, image_dir, padding) -> dict[str, np.ndarray]:
    """Each posting's image and text features one at a time through the saved processor, L2-normalised."""
    processor, model = AutoProcessor.from_pretrained(folder), AutoModel.from_pretrained(folder).eval()
    rows = {"image": [], "text": []}
    for name, title in zip(frame.image, frame.title):
        try:
            image = Image.open(image_dir / name).convert("RGB")
        except OSError:
            image = Image.fromarray(placeholder())
        inputs = processor(
            text=[normalise_title(title)], images=[image], truncation=True, return_tensors="pt", **padding
        )
        with torch.no_grad():
            image = model.get_image_features(pixel_values=inputs["pixel_values"]).pooler_output[0]
            text_inputs = {key: inputs[key] for key in ("input_ids", "attention_mask") if key in inputs}
            text = model.get_text_features(**text_inputs).pooler_output[0]
        rows["image"].append((image / image.norm()).numpy())
        rows["text"].append((text / text.norm()).numpy())
    return {output: np.stack(vectors) for output, vectors in rows.items()}


@pytest.mark.parametrize("family", FAMILIES)
def test_image_and_title_features_equal_the_models_own(tmp_path, family, capsys):
    folder, image_dir = image_text_folder(tmp_path / family, family), tmp_path / "images"
    frame = postings(image_dir)
    ours = image_text_embeddings(frame, image_dir, folder, batch_size=2, workers=0, device=torch.device("cpu"))
    padding = {"padding": "max_length", "max_length": 64} if family == "siglip" else {}
    expected = naive(folder, family, frame, image_dir, padding)
    assert set(ours) == {"image", "text"} and ours["image"].shape == (len(frame), 16 if family == "clip" else 32)
    for output in ["image", "text"]:
        np.testing.assert_allclose(ours[output], expected[output], atol=1e-5, err_msg=output)
    assert "1 of 5 images unreadable" in capsys.readouterr().out
    if family == "siglip":  # its last-token pooling sees the padding: titles padded otherwise embed otherwise
        other = naive(folder, family, frame, image_dir, {"padding": "max_length", "max_length": 32})
        assert not np.allclose(ours["text"], other["text"], atol=1e-3)


def test_a_folder_of_another_kind_or_processor_is_named(tmp_path):
    bert = tiny_bert(tmp_path / "bert")
    with pytest.raises(ValueError, match="bert: config.json's model_type is 'bert'; a clip model of the plan is"):
        image_text_embeddings(postings(tmp_path / "images"), tmp_path / "images", bert, workers=0)
    folder = image_text_folder(tmp_path / "clip", "clip")
    config = json.loads((folder / "processor_config.json").read_text())
    config["image_processor"]["do_center_crop"] = False
    (folder / "processor_config.json").write_text(json.dumps(config))
    message = "clip: the image processor's size {'shortest_edge': 35} (centre crop None) gives images of different"
    with pytest.raises(ValueError, match=re.escape(message)):
        image_transform(folder)
