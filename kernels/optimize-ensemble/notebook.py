# %% [markdown]
# # Shopee - Price Match Guarantee: ensemble optimiser
# Reads the out-of-fold (OOF) embeddings of several training runs (attached kernel outputs, or `RUNS`, which
# `make optimize RUNS="..."` puts in a first cell), checks they embed the same validation postings, and searches on
# them, maximising CV F1: per model output ("concat", "image", "text") which runs to combine and with what weights
# (lib.ensemble: concatenation with weights = weighted mean of cosine similarities), a blend (INB / query expansion)
# of each combined embedding, the union of these components and TF-IDF with every threshold, and the matching rules.
# Writes `inference_config.json` (lib.tuned_config: the inference kernel reads it), `report.json`, `report.md` and
# plots.

# %%
CONFIG = {
    "k": 50,  # neighbours per posting and embedding set
    "blends": [  # tried on each combined embedding; kept where it gains (lib.expansion.blend)
        {"kind": "inb", "k": 3, "alpha": 1.0, "stages": 1},
        {"kind": "qe", "k": 5, "alpha": 3.0, "stages": 1},
    ],
    "tfidf": {"analyzer": "word"},
    "hidden_test_rows": 70000,  # the gallery the thresholds are corrected for
}

# %%
import json

import matplotlib.pyplot as plt
import numpy as np

from lib import ensemble, knn, matching, oof, paths, plots, text, thresholds
from lib.data import read_postings
from lib.tuned_config import validate_tuned_config

COMPETITION = paths.input_dir("shopee-product-matching")
RUNS = globals().get("RUNS") or oof.attached_runs()
if not RUNS:
    raise FileNotFoundError(
        f"no training run is attached under {paths.input_root()}; attach shopee-train-<exp> outputs"
    )
runs = [oof.read_run(name, paths.input_dir(name)) for name in RUNS]
oof.check_aligned(runs)
train = read_postings(COMPETITION / "train.csv", labelled=True)
postings = oof.oof_postings(runs[0], train, "train.csv")
labels = runs[0].labels
titles = [text.normalise_title(title) for title in postings.title]
print(f"{len(runs)} runs, {len(labels)} OOF postings ({runs[0].split}): {', '.join(RUNS)}")

# %% [markdown]
# ## Each model output alone, and the greedy ensemble of each output over the runs

# %%
sets = {f"{run.name}/{output}": values for run in runs for output, values in run.outputs.items()}
pairs = ensemble.cached_pairs(sets, labels, CONFIG["k"])
single = {name: ensemble.step(name, 1.0, ensemble.f1_curve(pairs, pairs.similarity[name])) for name in sets}
outputs = sorted({output for run in runs for output in run.outputs})
selected = {
    output: ensemble.greedy(pairs, [name for name in sets if name.endswith(f"/{output}")]) for output in outputs
}
for output, (_, steps) in selected.items():
    print(f"{output}: " + " -> ".join(f"+{s['added']} ({s['share']}) {s['f1']:.4f}" for s in steps))

# %% [markdown]
# ## Components: the combined embeddings (blended where it gains) and TF-IDF; the union and its rules

# %%
vectors, neighbours, blends = {}, {}, {}
k = min(CONFIG["k"], len(labels))
for output, (weights, _) in selected.items():
    combined = ensemble.combine([sets[name] for name in weights], list(weights.values()))
    best_f1 = -1.0
    for blend in [None, *CONFIG["blends"]]:
        x = ensemble.blended(combined, blend)
        found = knn.neighbors(x, k=k)
        f1 = thresholds.f1_curve(matching.candidates({output: found}, {}), output, labels).max()
        if f1 >= best_f1 + (ensemble.MIN_GAIN if blend else 0):
            vectors[output], neighbours[output], blends[output], best_f1 = x, found, blend, f1
corpus = [text.normalise_title(title) for title in train.title]
vectors["tfidf"] = text.tfidf_vectors(titles, corpus=corpus, analyzer=CONFIG["tfidf"]["analyzer"])
neighbours["tfidf"] = knn.sparse_neighbors(vectors["tfidf"], k=k)
c = matching.candidates(neighbours, {"title": titles, "phash": list(postings.image_phash)})
conflicts = matching.unit_conflicts(c, titles)
curves = {name: thresholds.f1_curve(c, name, labels) for name in neighbours}
order = sorted(curves, key=lambda name: -curves[name].max())
alone = {name: float(thresholds.GRID[np.argmax(curves[name])]) for name in order}
tuned, union_steps = ensemble.tune_union(c, alone, labels, conflicts)
union_f1 = union_steps[-1]["f1"]
used = list(tuned["components"])
negatives = {name: thresholds.random_pair_similarities(vectors[name], labels) for name in used}
corrected = thresholds.corrected_thresholds(c, tuned, labels, negatives, CONFIG["hidden_test_rows"])
ablation = thresholds.ablation(c, tuned, labels, conflicts)
for entry in union_steps:
    print(f"union {entry['change']}: {entry['f1']:.4f}")

# %% [markdown]
# ## The inference config and the report

# %%
components = {"tfidf": {"tfidf": CONFIG["tfidf"]}} if "tfidf" in used else {}
for output in [name for name in used if name != "tfidf"]:
    members = [
        {"model": name.rsplit("/", 1)[0], "output": output, "weight": round(weight, 4)}
        for name, weight in selected[output][0].items()
    ]
    components[output] = {"members": members, "blend": blends[output]}
models = sorted({member["model"] for part in components.values() for member in part.get("members", [])})
inference_config = {
    "models": {name: {"kind": "checkpoint", "source": name, "file": oof.MODEL} for name in models},
    "components": components,
    "matching": tuned,
    "gallery_corrected": {"rows": CONFIG["hidden_test_rows"], "matching": corrected},
    "cv": {"rows": len(labels), "f1": {**{name: float(curves[name].max()) for name in used}, "union": union_f1}},
}
validate_tuned_config(inference_config, "inference_config.json")
with open("inference_config.json", "w") as file:
    json.dump(inference_config, file, indent=2)
report = {
    "runs": {run.name: {"split": run.split, "cv": run.metrics["best"]["cv"]} for run in runs},
    "rows": len(labels),
    "candidate_pairs": len(pairs.rows),
    "single": single,
    "greedy": {output: steps for output, (_, steps) in selected.items()},
    "components": {name: {"f1": float(curves[name].max()), "threshold": alone[name]} for name in order},
    "blends": blends,
    "union": union_steps,
    "ablation": ablation,
    "final": {"cv": union_f1, "matching": tuned, "gallery_corrected": corrected},
}
with open("report.json", "w") as file:
    json.dump(report, file, indent=2)
lines = [f"CV on {len(labels)} OOF postings of {len(runs)} runs ({runs[0].split})", ""]
lines += ["| step | CV F1 | threshold |", "|---|---:|---:|"]
lines += [f"| {name} alone | {s['f1']:.4f} | {s['threshold']} |" for name, s in single.items()]
lines += [f"| {run.name}: its own union (metrics.json) | {run.metrics['best']['cv']:.4f} | |" for run in runs]
for output, (_, steps) in selected.items():
    lines += [f"| {output}: + {s['added']} (share {s['share']}) | {s['f1']:.4f} | {s['threshold']} |" for s in steps]
lines += [
    f"| component {name} (blend {blends.get(name)}) | {curves[name].max():.4f} | {alone[name]} |" for name in order
]
lines += [f"| union: {entry['change']} | {entry['f1']:.4f} | |" for entry in union_steps]
lines += [f"| **final CV** (union of {', '.join(used)}) | **{union_f1:.4f}** | |"]
with open("report.md", "w") as file:
    file.write("\n".join(lines) + "\n")
print("\n".join(lines))

# %%
plots.f1_curves(thresholds.GRID, curves, {name: rule["threshold"] for name, rule in tuned["components"].items()})
plt.savefig("f1_vs_threshold.png", dpi=80)
figure, axis = plt.subplots(figsize=(6, 4))
for output, (_, steps) in selected.items():
    axis.plot(range(1, len(steps) + 1), [s["f1"] for s in steps], marker="o", label=output)
axis.axhline(union_f1, color="black", linestyle=":", label="final union")
axis.set(xlabel="members", ylabel="CV mean F1 (best threshold)", title="greedy additions per output")
axis.legend()
figure.savefig("greedy_additions.png", dpi=80)
plots.similarity_histograms(c, labels, used).savefig("similarity_histograms.png", dpi=80)
plt.show()
