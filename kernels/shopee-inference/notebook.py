# %% [markdown]
# # Shopee - Price Match Guarantee: inference
# Matches every test posting with title signals: TF-IDF neighbours, sentence-embedding neighbours (MiniLM from
# an attached dataset, also blended with INB), identical normalised titles, and the matching rules (min2, unit
# filter, ...). The thresholds are searched on train (nothing here is trained on it), then shifted for the size
# of the test gallery. When `test.csv` holds only the 3 visible rows (Kaggle's commit run) this is the CV run.

# %%
CONFIG = {
    "text_model": "all-minilm-l6-v2",  # slug of the attached dataset holding the transformers folder
    "k": 50,
    "batch_size": 64,
    "max_length": 64,
    "inb": {"k": 3, "alpha": 1.0, "stages": 1},  # neighbourhood blending of the text embeddings (text_inb)
    "qe": {"k": 5, "alpha": 3.0, "stages": 1},  # alpha query expansion of the text embeddings (text_qe)
    "hidden_test_rows": 70000,  # the gallery the commit run corrects its thresholds for
    "matching": {  # where the threshold search starts; each rule can be switched here
        "components": {
            "tfidf": {"threshold": 0.7, "min2": 0.5},
            "text_inb": {"threshold": 0.9, "min2": 0.8},
        },
        "groups": ["title"],
        "unit_filter": True,
        "mutual": False,
    },
}

# %%
import json

import matplotlib.pyplot as plt
import numpy as np

from lib import expansion, knn, matching, metrics, paths, plots, text, text_embed, thresholds
from lib.data import read_postings
from lib.submission import validate_submission, write_submission

COMPETITION = paths.input_dir("shopee-product-matching")
test = read_postings(COMPETITION / "test.csv")
train = read_postings(COMPETITION / "train.csv", labelled=True)
CV_MODE = len(test) <= 3
TITLE_CORPUS = [text.normalise_title(title) for title in list(train.title) + list(test.title)]  # for the idf
print(f"{len(test)} test postings ({'commit run: CV' if CV_MODE else 'scoring rerun'}); {len(train)} train postings")


# %%
def title_signals(postings):
    """Normalised titles, the vectors of every component, and each component's neighbours."""
    titles = [text.normalise_title(title) for title in postings.title]
    k = min(CONFIG["k"], len(postings))
    embeddings = text_embed.embed_texts(
        titles,
        paths.input_dir(CONFIG["text_model"]),
        batch_size=CONFIG["batch_size"],
        max_length=CONFIG["max_length"],
    )
    vectors = {"tfidf": text.tfidf_vectors(titles, corpus=TITLE_CORPUS), "text": embeddings}
    for name, blend in [("text_inb", CONFIG["inb"]), ("text_qe", CONFIG["qe"])]:
        vectors[name] = expansion.blend(embeddings, k=blend["k"], alpha=blend["alpha"], stages=blend["stages"])
    neighbours = {"tfidf": knn.sparse_neighbors(vectors["tfidf"], k=k)}
    neighbours |= {name: knn.neighbors(vectors[name], k=k) for name in ["text", "text_inb", "text_qe"]}
    return titles, vectors, neighbours


def candidate_pairs(postings, titles, neighbours):
    """Candidate pairs of every component and grouping, and the unit conflicts among them."""
    c = matching.candidates(neighbours, {"title": titles, "phash": list(postings.image_phash)})
    return c, matching.unit_conflicts(c, titles)


# %% [markdown]
# ## Threshold search and ablation on train

# %%
train_titles, train_vectors, train_neighbours = title_signals(train)
c, conflicts = candidate_pairs(train, train_titles, train_neighbours)
labels = train.label_group.to_numpy()
curves = {name: thresholds.f1_curve(c, name, labels) for name in train_neighbours}
alone = {name: float(thresholds.GRID[np.argmax(curve)]) for name, curve in curves.items()}
tuned, _ = thresholds.search(c, CONFIG["matching"], labels, conflicts)
negatives = {name: thresholds.random_pair_similarities(train_vectors[name], labels) for name in train_vectors}
target_rows = CONFIG["hidden_test_rows"] if CV_MODE else len(test)
corrected = thresholds.corrected_thresholds(c, tuned, labels, negatives, target_rows)
ablation = thresholds.ablation(c, tuned, labels, conflicts)
for name in ["text", "text_qe"]:  # the union re-tuned with another version of the text embeddings
    swapped = json.loads(json.dumps(tuned).replace('"text_inb"', f'"{name}"'))
    ablation[f"with {name} instead of text_inb"] = thresholds.search(c, swapped, labels, conflicts)[1]
train_lists = matching.to_posting_ids(matching.to_lists(c, matching.predict(c, tuned, conflicts)), train.posting_id)
report = {
    "rows": len(train),
    "f1": {
        **{name: float(curve.max()) for name, curve in curves.items()},
        "union": metrics.mean_f1(train_lists, metrics.true_matches(train.posting_id, labels)),
    },
    "thresholds": {"alone": alone, "union": tuned["components"]},
    "gallery_corrected": {"rows": target_rows, "union": corrected["components"]},
    "ablation": ablation,
}
with open("cv_scores.json", "w") as file:
    json.dump(report, file, indent=2)
with open("matching_config.json", "w") as file:
    json.dump({"raw": tuned, "gallery_corrected": corrected}, file, indent=2)
for name, score in report["f1"].items():
    print(f"CV F1 {name:>9}: {score:.4f}")
for name, score in ablation.items():
    print(f"ablation {name:>32}: {score:.4f}")

# %%
plots.similarity_histograms(c, labels, list(train_neighbours)).savefig("similarity_histograms.png", dpi=80)
plots.f1_curves(thresholds.GRID, curves, alone).savefig("f1_vs_threshold.png", dpi=80)
plt.show()

# %% [markdown]
# ## Submission

# %%
test_titles, _, test_neighbours = title_signals(test)
test_pairs, test_conflicts = candidate_pairs(test, test_titles, test_neighbours)
predicted = matching.to_lists(test_pairs, matching.predict(test_pairs, corrected, test_conflicts))
write_submission("submission.csv", test.posting_id, matching.to_posting_ids(predicted, test.posting_id))
validate_submission("submission.csv", test.posting_id)
print(f"submission.csv: {len(test)} rows")
