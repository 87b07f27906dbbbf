import json

import pytest

from lib.inference import time_budget
from lib.training import experiment
from tools.kaggle import train_hours

T4_RESNET50_TRAINING = 1165 * 1200 / 2984  # images/s: T4 inference x the V100's training / inference ratio
EFFECTIVE_FLOPS = 1165 * 8.2e9  # ResNet-50's mixed-precision inference on a T4, floating-point operations per second


def config(overrides: dict) -> dict:
    return experiment.resolve(overrides, "test.yaml")


def test_an_image_model_trains_four_fifths_and_validates_one_fifth_of_the_postings_on_two_gpus(tmp_path):
    resnet = config(
        {
            "model": {
                "name": "image",
                "text": None,
                "fusion": None,
                "heads": {"concat": None, "text": None},
                "image": {"backbone": "resnet50", "weights": "random"},
            },
            "image": {"sizes": [448]},
        }
    )
    seconds, unknown = train_hours.epoch_seconds(resnet, 448, tmp_path)
    train_rate = T4_RESNET50_TRAINING / 4  # twice the side: a quarter of the images per second
    validate_rate = 1165 / 4  # timm's inference table, scaled to the T4 by ResNet-50 itself
    assert unknown == []
    assert seconds == pytest.approx(
        {"resnet50 train": 27400 / train_rate / 2, "resnet50 validate": 6850 / validate_rate / 2}
    )


def test_a_text_model_costs_six_times_its_layer_parameters_per_token_to_train_and_two_to_embed(tmp_path):
    (tmp_path / "tiny").mkdir()
    (tmp_path / "tiny" / "config.json").write_text(
        json.dumps({"num_hidden_layers": 2, "hidden_size": 8, "intermediate_size": 16})
    )
    text = config({**text_overrides(), "folds": {"count": 4, "fold": 1}})
    parameters = 2 * (4 * 8 * 8 + 2 * 8 * 16)
    seconds, unknown = train_hours.epoch_seconds(text, 256, tmp_path)
    assert unknown == []
    assert seconds == pytest.approx(
        {
            "tiny train": 6 * parameters * 32 * (34250 * 3 / 4) / EFFECTIVE_FLOPS / 2,
            "tiny validate": 2 * parameters * 32 * (34250 / 4) / EFFECTIVE_FLOPS / 2,
        }
    )
    final = config({**text_overrides(), "folds": {"fold": None}})
    seconds, _ = train_hours.epoch_seconds(final, 256, tmp_path)
    assert seconds["tiny validate"] == 0 and seconds["tiny train"] == pytest.approx(
        6 * parameters * 32 * 34250 / EFFECTIVE_FLOPS / 2
    )


def text_overrides() -> dict:
    return {
        "model": {
            "name": "text",
            "image": None,
            "fusion": None,
            "heads": {"concat": None, "image": None},
            "text": {"model_dir": "tiny", "max_length": 32},
        }
    }


def test_known_models_without_a_local_copy_take_their_published_shapes_and_unknown_parts_are_named(tmp_path):
    assert train_hours.text_parameters("bert-base-multilingual-uncased", tmp_path) == 12 * (4 * 768**2 + 2 * 768 * 3072)
    unknown = config(
        {
            "model": {
                "image": {"backbone": "mystery_net", "weights": "random"},
                "text": {"model_dir": "someone/unheard-of"},
            }
        }
    )
    seconds, missing = train_hours.epoch_seconds(unknown, 256, tmp_path)
    assert seconds == {}
    assert missing == [
        "mystery_net (no cited rate)",
        f"someone/unheard-of (no config.json in {tmp_path / 'someone/unheard-of'})",
    ]


def test_the_report_follows_the_progressive_sizes_and_warns_past_a_sessions_twelve_hours(tmp_path):
    b5 = {"backbone": "efficientnet_b5", "weights": "random"}
    recipe = config({"train": {"epochs": 3}, "image": {"sizes": [456, 912]}, "model": {"image": b5}})
    text = train_hours.report(recipe, "b5.yaml", tmp_path)
    epochs = [line for line in text.splitlines() if line.startswith("  epoch")]
    assert [line.split(":")[0] for line in epochs] == [
        "  epoch 1 at 456 px",
        "  epoch 2 at 912 px",
        "  epoch 3 at 912 px",
    ]
    first, _ = train_hours.epoch_seconds(recipe, 456, tmp_path)
    assert f"  epoch 1 at 456 px: {sum(first.values()) / 60:.1f} min" in text
    assert "over a session's 12 hours" not in text
    long = config({"train": {"epochs": 60}, "image": {"sizes": [912]}, "model": {"image": b5}})
    assert "over a session's 12 hours: Kaggle stops it" in train_hours.report(long, "long.yaml", tmp_path)
    assert time_budget.KAGGLE_TRAIN_ROWS == 34250
    validate = train_hours.epoch_seconds(long, 912, tmp_path)[0]["efficientnet_b5 validate"]
    b5_training = 93.71 * (456 / 912) ** 2 * T4_RESNET50_TRAINING / 826.06  # no cited inference rate: 3 x training
    assert validate == pytest.approx(6850 / (3 * b5_training) / 2)
