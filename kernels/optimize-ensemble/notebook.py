# %% [markdown]
# # Shopee - Price Match Guarantee: ensemble optimiser
# Reads the out-of-fold (OOF) embeddings of several training runs (attached kernel outputs, or `RUNS`, which
# `make optimize RUNS="..."` sets in the parameters cell), checks they embed the same validation postings, and embeds
# those postings with frozen pretrained encoders (`ENCODERS`, `make optimize ENCODERS="..."`: sentence models, timm
# backbones, CLIP / SigLIP; lib.inference.plan). With encoders and no run, the rows are all of train: nothing in a
# frozen encoder was trained on them, so the plan is tuned before any training. Then it searches on the rows,
# maximising CV F1: per model output ("concat", "image", "text") which runs and encoders to combine and with what
# weights (lib.neighbours.combine: concatenation with weights = weighted mean of cosine similarities), a blend (INB /
# query expansion) of each combined embedding, the union of these components and TF-IDF of the titles (words,
# character n-grams, model codes) with every threshold, and the matching rules
# (lib.matching.thresholds.search); the plan is the best of that ensemble and each source (run or encoder) alone through
# the same search.
# Then the second stage: a LightGBM pair classifier over the plan's candidate pairs and graph steps on its scores
# (lib.second_stage.pair_stage), kept where its CV beats the rules'. Writes `inference_config.json` (lib.inference.plan:
# the inference kernel reads it), `pair_model.txt` when the stage is kept, `correction.npz` (the out-of-fold pairs the
# inference kernel corrects the plan by for its test's size: lib.inference.correction), `report.json`, `report.md` and
# plots.

# %% tags=["parameters"]
RUNS = None  # slugs of training runs (make optimize RUNS="..."); None: every attached run
ENCODERS = {}  # pretrained encoders' plan entries by dataset slug (make optimize ENCODERS="...")

# %%
CONFIG = {
    "k": 50,  # neighbours per posting and embedding set
    "blends": [  # tried on each combined embedding; kept where it gains (lib.neighbours.expansion.blend)
        {"kind": "inb", "k": 3, "alpha": 1.0, "stages": 1},
        {"kind": "qe", "k": 5, "alpha": 3.0, "stages": 1},
    ],
    "title_signals": {
        "tfidf": "word",
        "char": "char_wb",
        "code": "code",
    },  # TF-IDF components (lib.data.text.ANALYZERS)
    "compare_runs": True,  # also run the whole search on each source alone (the table's fair comparison)
    "pair_stage": True,  # fit the second stage (pair classifier + graph steps); kept where it gains on CV
    "batch_size": 64,  # the encoders' batches, halved on out-of-memory errors of the device
    "workers": 2,  # image loader processes
    "max_length": 64,  # title tokens of sentence models
}

# %%
import json
import time

import matplotlib.pyplot as plt

from lib.data import competition, oof, paths, text
from lib.data.postings import read_postings
from lib.inference import optimiser_report, pipeline, tuned_plan
from lib.inference.stopwatch import Stopwatch
from lib.matching import ensemble, pairs, plots, thresholds, tuning
from lib.neighbours import combine
from lib.neighbours.sparse import sparse_neighbors
from lib.second_stage import pair_stage

COMPETITION = paths.input_dir(competition.COMPETITION)
RUNS = oof.attached_runs() if RUNS is None else RUNS
if not RUNS and not ENCODERS:
    raise FileNotFoundError(
        f"no training run is attached under {paths.input_root()} and no encoder is given: attach shopee-train-<exp> "
        'outputs, or give pretrained encoders (make optimize ENCODERS="<slug> ...", make pretrained MODEL=...)'
    )
runs = [oof.read_run(name, paths.input_dir(name)) for name in RUNS]
train = read_postings(COMPETITION / "train.csv", labelled=True)
if runs:
    oof.check_aligned(runs)
    postings, labels, split = oof.oof_postings(runs[0], train, "train.csv"), runs[0].labels, runs[0].split
else:
    postings, labels, split = train, train.label_group.to_numpy(), "all of train: no run, frozen encoders only"
titles = [text.normalise_title(title) for title in postings.title]
print(f"{len(runs)} runs, {len(ENCODERS)} encoders, {len(labels)} rows ({split}): {', '.join([*RUNS, *ENCODERS])}")

# %% [markdown]
# ## The encoders' outputs on the rows (none without encoders)

# %%
encoded = pipeline.outputs_of(ENCODERS, postings, COMPETITION / "train_images", CONFIG, Stopwatch())
for name, found in encoded.items():
    print(f"{name}: " + ", ".join(f"{output} {values.shape[1]}-d" for output, values in found.items()))

# %% [markdown]
# ## Each model output alone, and the greedy ensemble of each output over the runs and encoders

# %%
sources = {run.name: run.outputs for run in runs} | encoded
sets = {f"{source}/{output}": values for source, outputs in sources.items() for output, values in outputs.items()}
cached = ensemble.cached_pairs(sets, CONFIG["k"])
truth = pairs.pair_truth(cached, labels)
single = {name: ensemble.step(name, 1.0, thresholds.f1_curve(cached, cached.similarity[name], truth)) for name in sets}
outputs = sorted({output for found in sources.values() for output in found})
selected = {
    output: ensemble.greedy(cached, truth, [name for name in sets if name.endswith(f"/{output}")]) for output in outputs
}
for output, (_, steps) in selected.items():
    print(f"{output}: " + " -> ".join(f"+{s['added']} ({s['share']}) {s['f1']:.4f}" for s in steps))

# %% [markdown]
# ## Components: the combined embeddings (blended where it gains) and the titles' TF-IDF; the union and its rules
# The same search is run on each source's outputs alone: the plan is the best of the ensemble and each source alone.

# %%
k = min(CONFIG["k"], len(labels))
corpus = [text.normalise_title(title) for title in train.title]
signals = CONFIG["title_signals"]
title_vectors = {name: text.tfidf_vectors(titles, corpus, analyzer) for name, analyzer in signals.items()}
title_neighbours = {name: sparse_neighbors(x, k=k) for name, x in title_vectors.items()}
phashes = list(postings.image_phash)


def searched(weights_by_output: dict[str, dict[str, float]]) -> dict:
    """Each output's combined embedding (blended where it gains) and TF-IDF, and the union tuned on them
    (lib.matching.tuning.tune): the weights, blends, the Tuning and its seconds, each component's vectors and
    neighbours."""
    vectors, neighbours, blends = dict(title_vectors), dict(title_neighbours), {}
    for output, weights in weights_by_output.items():
        combined = combine.combine([sets[name] for name in weights], list(weights.values()))
        vectors[output], neighbours[output], blends[output] = tuning.best_blend(combined, CONFIG["blends"], labels, k)
    started = time.perf_counter()
    tuned = tuning.tune(neighbours, titles, phashes, labels)
    return {
        "weights": weights_by_output,
        "blends": blends,
        "tuning": tuned,
        "search_seconds": time.perf_counter() - started,
        "vectors": vectors,
        "neighbours": neighbours,
    }


plans = {
    f"{source} alone": searched({output: {f"{source}/{output}": 1.0} for output in found})
    for source, found in (sources.items() if CONFIG["compare_runs"] and len(sources) > 1 else [])
}
plans["ensemble"] = searched({output: weights for output, (weights, _) in selected.items()})
chosen = max(plans, key=lambda name: plans[name]["tuning"].f1)  # of equal F1, a run alone (fewer models)
for name, plan in plans.items():
    print(f"{name}, through the search: {plan['tuning'].f1:.4f}")
result, blends = plans[chosen]["tuning"], plans[chosen]["blends"]
tuned, used = result.config, list(result.config["components"])
ablation = thresholds.ablation(result.candidates, tuned, labels, result.conflicts)
print(f"the plan: {chosen} ({result.f1:.4f}): {tuned}")

# %% [markdown]
# ## The second stage: a pair classifier over the plan's candidate pairs, then graph steps
# Every candidate pair of the chosen search's components (each component's k neighbours and the identical-title and
# identical-phash groups, both ways) gets its features and an out-of-fold probability from a LightGBM classifier
# trained by group k-fold on these OOF postings (no posting's pairs in the training folds of the model that scores
# them). The graph steps (threshold, mutual edges, tiered merging, agglomerative clustering, splitting oversized groups,
# at least one match) are each kept where they gain on CV. The stage replaces the rules where it beats them by MIN_GAIN.

# %%
stage, stage_seconds = None, 0.0
chosen_search = plans[chosen]
in_search = {name.rsplit("/", 1)[0] for weights in chosen_search["weights"].values() for name in weights}
image_text = pipeline.image_text_pairs(ENCODERS, {name: encoded[name] for name in in_search if name in ENCODERS})
if CONFIG["pair_stage"]:
    started = time.perf_counter()
    stage = pair_stage.fit(
        chosen_search["vectors"],
        chosen_search["neighbours"],
        result.candidates,
        titles,
        phashes,
        labels,
        image_text=image_text,
    )
    stage_seconds = time.perf_counter() - started
    for step in stage.steps:
        print(f"pair stage: {step['step']:>24}: {step['f1']:.4f} {'kept' if step['kept'] else 'not kept'}")
use_stage = stage is not None and stage.f1 >= result.f1 + ensemble.MIN_GAIN
if use_stage:
    stage.model.save_model(pair_stage.MODEL_FILE)
print(f"rules {result.f1:.4f}, pair stage {stage.f1 if stage else float('nan'):.4f}: the plan uses the", end=" ")
print("pair stage" if use_stage else "rules")

# %% [markdown]
# ## The inference config and the report
# Every baseline the report lists (each component alone, each run alone through the same search, every ablation line
# of the plan, every posting alone) is a plan the search evaluated or could choose, so none scores above the plan.

# %%
in_plan = list(plans[chosen]["vectors"]) if use_stage else used  # the stage takes every component's features
entries = tuned_plan.components(in_plan, signals, plans[chosen]["weights"], blends)
plan_stage = stage if use_stage else None
inference_config = tuned_plan.plan(result, entries, ENCODERS, len(labels), plan_stage)
tuned_plan.write(inference_config, result, labels, plan_stage)
report = optimiser_report.report(
    runs=runs,
    encoders=ENCODERS,
    rows=len(labels),
    candidate_pairs=len(cached.rows),
    single=single,
    greedy={output: steps for output, (_, steps) in selected.items()},
    searches=plans,
    chosen=chosen,
    ablation=ablation,
    stage=stage,
    stage_seconds=stage_seconds,
    plan=inference_config,
)
with open("report.json", "w") as file:
    json.dump(report, file, indent=2)
with open("report.md", "w") as file:
    file.write(optimiser_report.markdown(report, split))
print(optimiser_report.markdown(report, split), end="")

# %%
plots.f1_curves(thresholds.GRID, result.curves, {name: rule["threshold"] for name, rule in tuned["components"].items()})
plt.savefig("f1_vs_threshold.png", dpi=80)
figure, axis = plt.subplots(figsize=(6, 4))
for output, (_, steps) in selected.items():
    axis.plot(range(1, len(steps) + 1), [s["f1"] for s in steps], marker="o", label=output)
axis.axhline(result.f1, color="black", linestyle=":", label="final union")
axis.set(xlabel="members", ylabel="CV mean F1 (best threshold)", title="greedy additions per output")
axis.legend()
figure.savefig("greedy_additions.png", dpi=80)
plots.similarity_histograms(result.candidates, labels, used).savefig("similarity_histograms.png", dpi=80)
plt.show()
