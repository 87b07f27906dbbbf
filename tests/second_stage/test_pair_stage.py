"""lib.second_stage.pair_stage: on a planted set the second stage beats every single-threshold rule; a fitted stage
saved and applied to new postings matches through lib.second_stage.graph."""

import numpy as np

from lib.data.text import normalise_title, tfidf_vectors
from lib.matching import metrics, pairs, thresholds
from lib.neighbours.dense import neighbors
from lib.neighbours.sparse import sparse_neighbors
from lib.second_stage import graph, pair_stage

K = 10


def variants(seed: int, products: int = 70):
    """Products sold in two sizes: each size a label group of 2-3 postings. A product's sizes share one image (the
    image embedding cannot tell them apart) and a title that differs only in the amount, so that no threshold on
    either similarity separates the sizes, while the amounts do."""
    rng = np.random.default_rng(seed)
    vocabulary = [f"kata{w}" for w in range(40)]  # words shared by many products
    centres = rng.normal(size=(products, 32))
    labels, titles, images = [], [], []
    for product in range(products):
        words = list(rng.choice(vocabulary, 5, replace=False))
        for size, amount in enumerate(rng.choice([100, 250, 500, 1000], 2, replace=False)):
            for _ in range(rng.integers(2, 4)):
                labels.append(2 * product + size)
                chosen = [*rng.choice(words, 3, replace=False), *rng.choice(vocabulary, 2), f"{amount}ml"]
                titles.append(normalise_title(" ".join(rng.permutation(chosen))))
                images.append(centres[product] + rng.normal(scale=0.3, size=32))
    images = np.array(images, dtype=np.float32)
    images /= np.linalg.norm(images, axis=1, keepdims=True)
    return np.array(labels), titles, images


def components(titles, images):
    """The image and title TF-IDF components' vectors and neighbours, and their candidate pairs."""
    vectors = {"image": images, "tfidf": tfidf_vectors(titles, titles)}
    found = {"image": neighbors(images, k=K), "tfidf": sparse_neighbors(vectors["tfidf"], k=K)}
    return vectors, found, pairs.candidates(found, {"title": titles})


def test_the_pair_classifier_beats_every_single_threshold_rule():
    labels, titles, images = variants(0)
    vectors, found, c = components(titles, images)
    phashes = ["0" * 16] * len(labels)
    fitted = pair_stage.fit(vectors, found, c, titles, phashes, labels)
    rules = thresholds.component_curves(pairs.both_ways(c), ["image", "tfidf"], labels)
    best_rule = max(curve.max() for curve in rules.values())
    assert fitted.f1 > best_rule + 0.05, (fitted.f1, {name: curve.max() for name, curve in rules.items()})
    names = fitted.scored.names
    assert (
        len(fitted.scored.features) == len(fitted.scored.candidates.rows) and len(names) == fitted.model.num_feature()
    )


def test_a_fitted_stage_scores_new_postings_from_its_saved_model(tmp_path):
    labels, titles, images = variants(0)
    vectors, found, c = components(titles, images)
    phashes = ["0" * 16] * len(labels)
    fitted = pair_stage.fit(vectors, found, c, titles, phashes, labels)
    fitted.model.save_model(str(tmp_path / pair_stage.MODEL_FILE))
    stage = {"file": pair_stage.MODEL_FILE, "features": fitted.scored.names, "graph": fitted.config}

    new_labels, new_titles, new_images = variants(1, products=40)
    new_vectors, new_found, new_c = components(new_titles, new_images)
    new_phashes = ["0" * 16] * len(new_labels)
    both, scores, scorer = pair_stage.score(new_vectors, new_found, new_c, new_titles, new_phashes, stage, tmp_path)
    assert scorer == "lightgbm" and len(scores) == len(both.rows)
    ids = [str(i) for i in range(len(new_labels))]
    predicted = pairs.to_posting_ids(graph.apply(both, scores, stage["graph"]), ids)
    f1 = metrics.mean_f1(predicted, metrics.true_matches(ids, new_labels))
    rules = thresholds.component_curves(pairs.both_ways(new_c), ["image", "tfidf"], new_labels)
    assert f1 > max(curve.max() for curve in rules.values())
