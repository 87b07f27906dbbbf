"""Postings to candidate pairs by a plan: model outputs -> component vectors -> neighbours -> pairs and conflicts.

A plan (the inference config of lib.inference.plan) names models (training checkpoints, sentence models, frozen
pretrained image backbones and CLIP / SigLIP models), components (a weighted ensemble of model outputs, optionally
blended by INB or query expansion, or TF-IDF of the titles) and the matching rules over the components. Every stage is
timed on a lib.inference.stopwatch.Stopwatch.
"""

from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from lib.data import oof, paths, text
from lib.data.images import read_image
from lib.devices import default_device
from lib.inference.stopwatch import Stopwatch, scan_flops, sparse_products
from lib.matching import pairs
from lib.models import backbone, embed, image_text, sentence
from lib.models.checkpoint import read_checkpoint
from lib.neighbours import combine, dense, expansion
from lib.neighbours.sparse import sparse_neighbors

IMAGE_SAMPLE = 32  # images read in the main process to time reading apart from the model
READS_IMAGES = ("checkpoint", "image", "clip")  # the model kinds whose passes read images (lib.inference.plan)
SENTENCE_CONVENTION = ("pooling", "prefix")  # a sentence model's keys passed to lib.models.sentence.embed_texts


def fitting_batches(embed_with, batch_size: int):
    """`embed_with(batch_size)`, the batch size halved after each out-of-memory error of the device."""
    while True:
        try:
            return embed_with(batch_size)
        except torch.cuda.OutOfMemoryError:
            if batch_size == 1:
                raise
            batch_size //= 2
            torch.cuda.empty_cache()
            print(f"out of device memory: trying again with batch size {batch_size}")


def used_models(plan: dict) -> list[str]:
    """The models the plan's components take outputs from."""
    return sorted({m["model"] for component in plan["components"].values() for m in component.get("members", [])})


def checkpoint_path(model: dict) -> Path:
    """The model.pt of a checkpoint model, in its attached source."""
    return Path(paths.input_path(model["source"])) / model["file"]


def time_image_reading(postings, image_dir: Path, workers: int, stopwatch: Stopwatch, name: str) -> None:
    """Time reading a few images here, in this process: a decode stage, spread over the loader's workers."""
    sample = list(postings.image[:IMAGE_SAMPLE])
    with stopwatch.stage(f"{name}: read images", len(sample), kind="decode", workers=max(workers, 1)):
        for image in sample:
            read_image(Path(image_dir) / image)  # an unreadable one is counted by the embedding pass


def forward_parts(model: dict) -> list[str]:
    """The parts of a model whose cited rates project its forward passes (lib.inference.time_budget.cited_rate): an
    image backbone (its architecture, without the pretrained tag) at its image size, a text or CLIP / SigLIP model by
    its folder's name."""
    if model["kind"] in ("sentence", "clip"):
        return [Path(model["source"]).name]
    if model["kind"] == "image":
        return [f"{model['backbone'].split('.')[0]}@{model['image_size']}"]
    extra = read_checkpoint(checkpoint_path(model))["extra"]
    image, text = extra["config"]["model"].get("image"), extra["config"]["model"].get("text")
    parts = [f"{image['backbone']}@{extra['image_size']}"] if image else []
    return parts + ([Path(text["model_dir"]).name] if text else [])


def embeddings_of(model: dict, postings, titles: list[str], image_dir: Path, settings: dict, batch_size: int) -> dict:
    """One model's outputs ({output: rows x dim}) for the postings."""
    loading = {"batch_size": batch_size, "workers": settings["workers"]}
    if model["kind"] == "checkpoint":
        return embed.posting_embeddings(checkpoint_path(model), postings, image_dir, **loading)
    folder = Path(paths.input_path(model["source"]))
    if model["kind"] == "image":
        weights, name, size = folder / model["file"], model["backbone"], model["image_size"]
        return backbone.image_embeddings(postings, image_dir, weights, name, size, **loading)
    if model["kind"] == "clip":
        return image_text.image_text_embeddings(postings, image_dir, folder, **loading)
    convention = {key: model[key] for key in SENTENCE_CONVENTION if key in model}
    vectors = sentence.embed_texts(
        titles, folder, **convention, batch_size=batch_size, max_length=settings["max_length"]
    )
    return {"text": vectors}


def image_text_pairs(models: dict, outputs: dict) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The image and text outputs of each clip model (of `models`, by name) among `outputs` (model_outputs), for the
    image-title pair feature of the second stage (lib.second_stage.pair_features)."""
    return {name: (found["image"], found["text"]) for name, found in outputs.items() if models[name]["kind"] == "clip"}


def model_outputs(plan: dict, postings, image_dir: Path, settings: dict, stopwatch: Stopwatch) -> dict:
    """Each model's L2-normalised outputs ({model: {output: rows x dim}}) for the postings, of the models the plan's
    components use (`outputs_of`)."""
    used = {name: plan["models"][name] for name in used_models(plan)}
    return outputs_of(used, postings, image_dir, settings, stopwatch)


def outputs_of(models: dict, postings, image_dir: Path, settings: dict, stopwatch: Stopwatch) -> dict:
    """Each model's L2-normalised outputs ({model: {output: rows x dim}}) for the postings; `models`: name -> a plan's
    model entry (lib.inference.plan).

    Args:
        settings: batch_size (halved on out-of-memory errors), workers (image loader processes), max_length
            (tokens of sentence models).
    """
    titles = [text.normalise_title(title) for title in postings.title]
    outputs = {}
    for name, model in models.items():
        if model["kind"] in READS_IMAGES:
            time_image_reading(postings, image_dir, settings["workers"], stopwatch, name)
        parts, dtype = forward_parts(model), "float16" if default_device().type == "cuda" else "float32"
        with stopwatch.stage(f"{name}: embeddings", len(postings), "forward", dtype=dtype, parts=parts):
            embed_with = partial(embeddings_of, model, postings, titles, image_dir, settings)
            outputs[name] = fitting_batches(embed_with, settings["batch_size"])
    return outputs


def component_vectors(plan: dict, outputs: dict, titles: list[str], corpus: list[str], stopwatch: Stopwatch) -> dict:
    """Each component's vectors: TF-IDF rows of the normalised titles, or its members combined (and blended)."""
    vectors = {}
    for name, component in plan["components"].items():
        if "tfidf" in component:
            with stopwatch.stage(f"{name}: TF-IDF", len(titles)):
                vectors[name] = text.tfidf_vectors(titles, corpus=corpus, analyzer=component["tfidf"]["analyzer"])
            continue
        members = component["members"]
        combined = combine.combine([outputs[m["model"]][m["output"]] for m in members], [m["weight"] for m in members])
        blend = component.get("blend")
        if blend:
            flops = blend["stages"] * scan_flops(*combined.shape)
            with stopwatch.stage(f"{name}: {blend['kind']}", len(combined), "matmul", flops=flops, dtype=scan_name()):
                combined = expansion.blend(combined, k=blend["k"], alpha=blend["alpha"], stages=blend["stages"])
        vectors[name] = combined
    return vectors


def scan_name() -> str:
    """The precision of dense neighbour scans on this machine (lib.neighbours.dense.scan_dtype), by name."""
    return str(dense.scan_dtype(default_device())).removeprefix("torch.")


def neighbour_search(vectors: dict, k: int, stopwatch: Stopwatch) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each component's k nearest postings (itself included): `(sim, idx)` of lib.neighbours.dense or .sparse."""
    found = {}
    for name, x in vectors.items():
        k_here = min(k, x.shape[0])
        if sp.issparse(x):
            with stopwatch.stage(f"{name}: neighbours", x.shape[0], "sparse", flops=sparse_products(x)):
                found[name] = sparse_neighbors(x, k=k_here)
            continue
        with stopwatch.stage(f"{name}: neighbours", len(x), "matmul", flops=scan_flops(*x.shape), dtype=scan_name()):
            found[name] = dense.neighbors(x, k=k_here)
    return found


def candidate_pairs(postings, titles: list[str], neighbours: dict, stopwatch: Stopwatch):
    """Candidate pairs of every component and identical-title / identical-phash group, and their unit conflicts."""
    with stopwatch.stage("candidate pairs", len(titles)):
        c = pairs.candidates(neighbours, {"title": titles, "phash": list(postings.image_phash)})
        return c, pairs.unit_conflicts(c, titles)


@dataclass
class Signals:
    """What a plan's stages give for some postings: candidate pairs and their unit conflicts, each component's vectors
    and neighbours, each model's outputs."""

    candidates: pairs.Candidates
    conflicts: np.ndarray
    vectors: dict
    neighbours: dict
    outputs: dict


def signals(
    plan: dict, postings, titles: list[str], image_dir: Path, corpus: list[str], settings: dict, stopwatch: Stopwatch
) -> Signals:
    """The plan's stages on the postings (their normalised `titles`, images in `image_dir`): model outputs, component
    vectors (TF-IDF's idf from `corpus`), each component's `settings["k"]` neighbours, candidate pairs; each timed on
    `stopwatch`. `settings` as for `outputs_of`, with k."""
    outputs = model_outputs(plan, postings, image_dir, settings, stopwatch)
    vectors = component_vectors(plan, outputs, titles, corpus, stopwatch)
    neighbours = neighbour_search(vectors, settings["k"], stopwatch)
    c, conflicts = candidate_pairs(postings, titles, neighbours, stopwatch)
    return Signals(c, conflicts, vectors, neighbours, outputs)


def evaluation_rows(plan: dict, train):
    """The train postings the plan is evaluated on: the out-of-fold rows its checkpoints share (lib.data.oof checks they
    are the same rows in one order), or all of train when it uses no checkpoint (nothing in it was trained on train).
    A checkpoint without out-of-fold rows (trained on every row) is refused: CV would score rows it trained on."""
    runs = []
    for name in used_models(plan):
        model = plan["models"][name]
        if model["kind"] == "checkpoint":
            folder = checkpoint_path(model).parent
            if not (folder / oof.OOF).is_file():
                raise FileNotFoundError(
                    f"{folder / oof.OOF}: missing, so model {name!r} of the plan ({model['source']}) has no "
                    "out-of-fold rows, and CV on train would score rows it trained on; name runs trained with a "
                    "validation fold (folds.fold: 0 to count - 1 in the experiment) in the plan, as make optimize does"
                )
            runs.append(oof.read_run(model["source"], folder))
    if not runs:
        return train
    oof.check_aligned(runs)
    return oof.oof_postings(runs[0], train, "train.csv")
