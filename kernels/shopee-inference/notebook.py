# %% [markdown]
# # Shopee - Price Match Guarantee: inference
# Matches every test posting with the union of three title signals: TF-IDF neighbours, sentence-embedding
# neighbours (MiniLM from an attached dataset) and identical normalised titles. When `test.csv` holds only
# the 3 visible rows (Kaggle's commit run) it also runs the same matching on train and reports CV F1.

# %%
CONFIG = {
    "text_model": "all-minilm-l6-v2",  # slug of the attached dataset holding the transformers folder
    "k": 50,
    "thresholds": {"tfidf": 0.7, "text": 0.9},  # chosen on the sample; issue 3 tunes them on CV
    "batch_size": 64,
    "max_length": 64,
}

# %%
import json

from lib import knn, matching, metrics, paths, text, text_embed
from lib.data import read_postings
from lib.submission import validate_submission, write_submission

COMPETITION = paths.input_dir("shopee-product-matching")
test = read_postings(COMPETITION / "test.csv")
CV_MODE = len(test) <= 3
print(f"{len(test)} test postings; CV on train: {CV_MODE}")


# %%
def match_postings(postings) -> dict[str, list[list[int]]]:
    """Every component's matches (row indices, itself first) and their union."""
    titles = [text.normalise_title(title) for title in postings.title]
    k, thresholds = min(CONFIG["k"], len(postings)), CONFIG["thresholds"]
    _, tfidf_idx = text.tfidf_neighbors(titles, k=k, threshold=thresholds["tfidf"])
    embeddings = text_embed.embed_texts(
        titles,
        paths.input_dir(CONFIG["text_model"]),
        batch_size=CONFIG["batch_size"],
        max_length=CONFIG["max_length"],
    )
    _, text_idx = knn.neighbors(embeddings, k=k, threshold=thresholds["text"])
    components = {
        "tfidf": matching.neighbor_lists(tfidf_idx),
        "text": matching.neighbor_lists(text_idx),
        "title": matching.identical_key_groups(titles),
    }
    components["union"] = matching.union(*components.values())
    return components


# %%
if CV_MODE:
    train = read_postings(COMPETITION / "train.csv", labelled=True)
    actual = metrics.true_matches(train.posting_id, train.label_group)
    cv_components = match_postings(train)
    scores = {
        name: metrics.mean_f1(matching.to_posting_ids(matches, train.posting_id), actual)
        for name, matches in cv_components.items()
    }
    report = {"rows": len(train), "f1": scores, "thresholds": CONFIG["thresholds"]}
    with open("cv_scores.json", "w") as file:
        json.dump(report, file, indent=2)
    for name, score in scores.items():
        print(f"CV F1 {name:>6}: {score:.4f}")

# %%
predicted = match_postings(test)["union"]
write_submission("submission.csv", test.posting_id, matching.to_posting_ids(predicted, test.posting_id))
validate_submission("submission.csv", test.posting_id)
print(f"submission.csv: {len(test)} rows")
