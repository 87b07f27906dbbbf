# %% [markdown]
# # Shopee - Price Match Guarantee: training
# Trains one experiment: the default config of `lib/training/experiment.py` with the overrides of
# `kernels/shopee-train/experiments/<name>.yaml`, which `make push-train EXP=<name>` (and `make train`) set in the
# parameters cell below as `EXPERIMENT_NAME` and `EXPERIMENT`; without them (a plain build) the defaults are trained,
# once their image backbone's weights are named (`model.image.weights`: a file of an attached dataset, or `random`).
# On every GPU (one process each), else on the CPU. The output folder is a weights dataset: `model.pt` (the best
# epoch, with its config), `metrics.json`, `oof_embeddings.npz`, plots, the MLflow run, `dataset-metadata.json`.
# A `last.pt` left by a killed run in the output folder (or in the source named by `resume`) is continued from.

# %% tags=["parameters"]
EXPERIMENT_NAME = "default"  # an experiment's name and settings (make train / make push-train EXP=<name>)
EXPERIMENT = None  # None: the defaults of lib/training/experiment.py

# %%
import json
from pathlib import Path

from lib.training import experiment, train

# %% [markdown]
# ## Settings
# The experiment's whole config: the defaults with its overrides, as the training reads it (metrics.json keeps it).

# %%
SOURCE = "the default experiment" if EXPERIMENT is None else f"kernels/shopee-train/experiments/{EXPERIMENT_NAME}.yaml"
CONFIG = experiment.resolve(EXPERIMENT, SOURCE)
print(f"experiment {EXPERIMENT_NAME} ({SOURCE}):")
print(json.dumps(CONFIG, indent=1))

# %% [markdown]
# ## Training

# %%
METRICS = train.run(CONFIG, EXPERIMENT_NAME, Path.cwd())

# %% [markdown]
# ## Summary

# %%
best = METRICS["best"]
print(f"best epoch {best['epoch']} of {len(METRICS['epochs'])}; model.pt holds it")
for entry in METRICS["epochs"]:
    scores = ", ".join(f"{output} {value:.4f}" for output, value in (entry["cv"] or {}).items())
    print(f"epoch {entry['epoch']} ({entry['image_size']} px): loss {entry['loss']:.4f}; CV F1 {scores or 'none'}")
