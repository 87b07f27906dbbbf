# The user's interface. `make demo` and `make test` create .venv from the lock (requirements.lock) when missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
KERNEL ?= shopee-inference
SAMPLE := data/sample
COMP ?= $(SAMPLE)
BUILD_DIR ?= build
ROWS ?= 2000
SEED ?= 0
# The locks are for the machines the project runs on: Linux x86_64, CPython 3.11.
LOCK_FLAGS := --generate-hashes --python-version 3.11 --python-platform x86_64-manylinux_2_28
KAGGLE_VENV := .venv-kaggle
KAGGLE_PY := $(KAGGLE_VENV)/bin/python
KAGGLE_WHEELS := data/kaggle-image-wheels
KAGGLE_IMAGE_TESTS := tests/test_train_kernel.py tests/test_optimize_kernel.py tests/test_inference_kernel.py

.PHONY: help setup browser lock test-unit test-kaggle-image sample sample-hidden datasets real-data title-report build run run-source lab demo timing bench bench-pairs bench-title-plan gpu-check gpu-bundle pretrained test lint format clean

help:  ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 16

setup: $(VENV)/.installed  ## create .venv with exactly the packages of requirements.lock (hashes checked)

$(VENV)/.installed: requirements.lock
	rm -rf $(VENV)  # a new lock means a new environment: nothing from an older lock stays
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --require-hashes --no-deps -r requirements.lock
	$(PY) -m pip check
	$(PY) -m tools.env.lock_check --installed requirements.lock
	touch $@

lock: setup  ## recompile both locks from their lists (every dependency, with hashes), then tools/env/wheels.txt
	for name in requirements requirements-kaggle-image; do \
	  cp -p $$name.lock $$name.lock.before; \
	  $(VENV)/bin/uv pip compile --quiet $(LOCK_FLAGS) $$name.in -o $$name.lock || exit 1; \
	  if cmp -s $$name.lock $$name.lock.before; then touch -r $$name.lock.before $$name.lock; fi; \
	  rm $$name.lock.before; \
	done  # a lock that did not change keeps its time, so the environments made from it stay
	$(PY) -m tools.env.lock_check
	@echo "make setup installs the new lock; then regenerate the wheels list: $(PY) -m tools.env.wheels list"

# The Kaggle-image test environment: the image's versions (tools/env/kaggle_image.txt) on this machine's Python 3.11, then
# the wheels dataset's packages installed offline on top with the command of the kernels' wheels cell (build.py).
# uv installs the lock: it downloads the image's CUDA torch (about 3 GB) once into its cache.
$(KAGGLE_VENV)/.installed: requirements-kaggle-image.lock tools/env/wheels.txt | setup
	rm -rf $(KAGGLE_VENV)
	$(PYTHON) -m venv $(KAGGLE_VENV)
	$(VENV)/bin/uv pip install --quiet --python $(KAGGLE_PY) --require-hashes --no-deps -r requirements-kaggle-image.lock
	$(KAGGLE_PY) -m tools.env.lock_check --installed requirements-kaggle-image.lock
	$(PY) -m tools.env.wheels download --python 3.11 --out $(KAGGLE_WHEELS)
	$(KAGGLE_PY) -m pip install --quiet --no-index --find-links $(KAGGLE_WHEELS) -r $(KAGGLE_WHEELS)/requirements.txt
	$(KAGGLE_PY) -m pip check
	touch $@

test-kaggle-image: $(KAGGLE_VENV)/.installed sample datasets  ## the end-to-end runs of the built kernels in the Kaggle-image environment
	$(KAGGLE_PY) -m pytest -q -p no:cacheprovider $(KAGGLE_IMAGE_TESTS)

sample: $(SAMPLE)/train.csv  ## generate the sample competition folder (ROWS=2000 SEED=0)

$(SAMPLE)/train.csv: tools/data/make_sample.py | setup
	$(PY) -m tools.data.make_sample --out $(SAMPLE) --rows $(ROWS) --seed $(SEED)

sample-hidden: $(SAMPLE)-hidden/train.csv  ## the same sample with every held-out row in test.csv (the scoring rerun)

$(SAMPLE)-hidden/train.csv: tools/data/make_sample.py | setup
	$(PY) -m tools.data.make_sample --out $(SAMPLE)-hidden --rows $(ROWS) --seed $(SEED) --hidden

datasets: data/datasets/all-minilm-l6-v2/config.json data/datasets/shopee-wheels/requirements.txt  ## local copies of the datasets kernels attach

data/datasets/all-minilm-l6-v2/config.json data/datasets/shopee-wheels/requirements.txt &: tools/env/wheels.txt | setup
	$(PY) -m tools.local.local_datasets
	touch data/datasets/all-minilm-l6-v2/config.json data/datasets/shopee-wheels/requirements.txt

real-data: data/real/restaurants/train.csv  ## public entity-matching sets with gold matches as competition folders in data/real/ (downloads py-entitymatching's sdist once)

data/real/restaurants/train.csv: tools/data/real_data.py | setup
	$(PY) -m tools.data.real_data --out data/real

title-report: sample datasets real-data  ## the title-only plan on the sample and data/real/*: commit-run CV, ablation, the rerun played on a fold
	$(PY) -m tools.bench.title_report $(SAMPLE) data/real/restaurants data/real/dblp-acm

build: setup  ## build every kernel into BUILD_DIR/<name>/ (default build/: notebook + kernel-metadata.json)
	$(PY) build.py --out $(BUILD_DIR)

run: build sample datasets  ## run the built KERNEL locally, offline, on COMP (default: the sample; inference needs the demo's runs); LAYOUT=flat: old /kaggle/input layout
	$(PY) -m tools.local.variants --build $(BUILD_DIR)
	$(PY) -m tools.local.run_kernel $(KERNEL) --comp $(COMP) --build $(BUILD_DIR) $(if $(LAYOUT),--layout $(LAYOUT))

run-source: build sample datasets  ## run kernels/KERNEL/notebook.py as a script, lib importable
	$(PY) -m tools.local.run_kernel $(KERNEL) --comp $(COMP) --build $(BUILD_DIR) --source

lab: setup sample datasets  ## JupyterLab on 127.0.0.1: kernels/*/notebook.py open as notebooks (jupytext), run on KERNEL's inputs from COMP (tools/local/lab.py)
	$(PY) -m tools.local.lab $(KERNEL) --comp $(COMP)

demo: setup sample datasets  ## the whole loop on the sample: train demo and demo2, tune their ensemble, run inference (CV + submission)
	$(MAKE) --no-print-directory train EXP=demo
	$(MAKE) --no-print-directory train EXP=demo2
	$(MAKE) --no-print-directory optimize RUNS="shopee-train-demo shopee-train-demo2"
	$(MAKE) --no-print-directory run KERNEL=shopee-inference

timing: build sample datasets  ## inference on 70,000 synthetic test rows on this CPU with the demo's models: the per-stage time table
	$(PY) -m tools.data.make_timing_sample --sample $(SAMPLE) --out data/timing-70k --rows 70000
	$(PY) -m tools.local.run_kernel shopee-inference --comp data/timing-70k --build $(BUILD_DIR) --output runs/timing-70k --timeout 14400

bench: setup  ## exact kNN against faiss-cpu IndexFlatIP (n = 10k, 35k, 70k; 512-d; k=50), the scan in bfloat16 and float32, sparse TF-IDF search, char TF-IDF against scikit-learn
	$(PY) -m tools.bench.knn

bench-pairs: setup  ## the second stage at 70,000 synthetic postings: pair features and scores, graph steps, against LightGBM's and scipy's own
	$(PY) -m tools.bench.pair_stage

pretrained: setup  ## MODEL=timm:<name>.<tag> | hf:<model id>: fetch it here (internet) into data/datasets/<slug>/ with datasets-meta/<slug>/, print the experiment and kernel.yaml lines (tools/data/pretrained.py)
	$(PY) -m tools.data.pretrained $(MODEL)

bench-title-plan: setup datasets  ## the title plan's tuning bounded (lib/inference/title_plan.py) against all of train, at 34,250 synthetic train and 70,000 test postings: each stage's T4 projection, both plans' test F1
	$(PY) -m tools.bench.title_plan

gpu-check: setup sample datasets  ## on a CUDA machine, offline: CUDA tests, the float16 scan, a training epoch, inference at 70,000 rows measured against its projection (tools/gpu/check.py)
	$(PY) -m tools.gpu.check

gpu-bundle: setup datasets  ## .gpu-bundle/: wheels, a small sample and a tiny text model, for gpu-check on a CUDA machine whose Python has torch but no network (tools/gpu/bundle.py)
	$(PY) -m tools.gpu.bundle

# Debian's chromium, for the browser test of `make lab` (tests/test_lab.py): a browser download is not possible here.
CHROMIUM := /usr/bin/chromium

browser: $(CHROMIUM)  ## Debian's chromium for the lab's browser test: apt-get when root, else the command to run

$(CHROMIUM):
	@if [ "$$(id -u)" = 0 ]; then \
	  echo "installing Debian's chromium (apt-get) for the browser test of make lab"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; \
	else \
	  echo "the browser test needs Debian's chromium: run 'sudo apt-get install chromium', then make test again" >&2; \
	  exit 1; \
	fi

test: setup browser  ## lint, format check and the test suite (2 pytest-xdist workers, one CPU each)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest -q -n 2

test-unit: setup  ## the fast tier for the edit loop: ruff and the unit tests of each module, no end-to-end run
	$(PY) -m ruff check .
	$(PY) -m pytest -q -n 2 -m "not e2e"

lint: setup  ## ruff lint only
	$(PY) -m ruff check .

format: setup  ## rewrite files with ruff format
	$(PY) -m ruff format .

clean:  ## remove build/, runs/ and generated data (keeps .venv)
	rm -rf build runs data

# The targets of each job beyond the local loop, one file each in make/: Kaggle delivery (push, datasets, status,
# submit), local training, the ensemble optimiser. `make help` lists their targets with these.
include make/delivery.mk
include make/train.mk
include make/optimize.mk
