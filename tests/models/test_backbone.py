"""lib.models.backbone: a frozen timm backbone's pooled features of posting images against timm's own forward."""

import numpy as np
import pytest
import timm
import torch
from PIL import Image
from safetensors.torch import load_file

from lib.data.augment import eval_transform
from lib.data.images import placeholder
from lib.models.backbone import image_embeddings
from tests.tiny_encoders import backbone_weights, postings

NAME, SIZE = "test_resnet.r160_in1k", 40


def test_pooled_features_equal_timms_forward_on_the_same_pixels(tmp_path, capsys):
    weights = backbone_weights(tmp_path / "test_resnet.safetensors")
    frame = postings(tmp_path / "images")
    out = image_embeddings(frame, tmp_path / "images", weights, NAME, SIZE, batch_size=2, workers=0, device="cpu")

    model = timm.create_model(NAME, num_classes=0).eval()  # timm's global pool, no classifier
    state = {key: value for key, value in load_file(weights).items() if not key.startswith("fc.")}
    model.load_state_dict(state)
    config = model.pretrained_cfg
    transform = eval_transform(SIZE, tuple(config["mean"]), tuple(config["std"]))
    pixels = [np.asarray(Image.open(tmp_path / "images" / name).convert("RGB")) for name in frame.image[:-1]]
    batch = torch.stack([transform(image=image)["image"] for image in [*pixels, placeholder()]])
    with torch.no_grad():
        expected = torch.nn.functional.normalize(model(batch), dim=1).numpy()
    assert list(out) == ["image"] and out["image"].shape == (len(frame), model.num_features)
    np.testing.assert_allclose(out["image"], expected, atol=1e-5)
    printed = capsys.readouterr().out
    assert "1 of 5 images unreadable" in printed and "broken.jpg: UnidentifiedImageError" in printed


def test_a_name_that_is_no_timm_model_is_refused(tmp_path):
    weights = backbone_weights(tmp_path / "test_resnet.safetensors")
    with pytest.raises(ValueError, match="backbone: 'no_such_net' is not a timm model"):
        image_embeddings(postings(tmp_path / "images"), tmp_path / "images", weights, "no_such_net", SIZE, workers=0)
