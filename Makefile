# The user's interface. `make demo` and `make test` create .venv with the pinned dependencies when missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
KERNEL ?= shopee-inference
SAMPLE := data/sample
COMP ?= $(SAMPLE)
ROWS ?= 2000
SEED ?= 0

.PHONY: help setup sample sample-hidden datasets build run run-source demo timing bench test lint format clean

help:  ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 16

setup: $(VENV)/.installed  ## create .venv with the pinned dependencies

$(VENV)/.installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

sample: $(SAMPLE)/train.csv  ## generate the sample competition folder (ROWS=2000 SEED=0)

$(SAMPLE)/train.csv: tools/make_sample.py | setup
	$(PY) tools/make_sample.py --out $(SAMPLE) --rows $(ROWS) --seed $(SEED)

sample-hidden: $(SAMPLE)-hidden/train.csv  ## the same sample with every held-out row in test.csv (the scoring rerun)

$(SAMPLE)-hidden/train.csv: tools/make_sample.py | setup
	$(PY) tools/make_sample.py --out $(SAMPLE)-hidden --rows $(ROWS) --seed $(SEED) --hidden

datasets: data/datasets/all-minilm-l6-v2/config.json data/datasets/shopee-wheels/requirements.txt  ## local copies of the datasets kernels attach

data/datasets/all-minilm-l6-v2/config.json data/datasets/shopee-wheels/requirements.txt &: tools/wheels.txt | setup
	$(PY) tools/local_datasets.py
	touch data/datasets/all-minilm-l6-v2/config.json data/datasets/shopee-wheels/requirements.txt

build: setup  ## build every kernel into build/<name>/ (notebook + kernel-metadata.json)
	$(PY) build.py

run: build sample datasets  ## run the built KERNEL locally, offline, on COMP (default: the sample; inference needs the demo's runs)
	$(PY) tools/run_kernel.py $(KERNEL) --comp $(COMP)

run-source: build sample datasets  ## run kernels/KERNEL/notebook.py as a script, lib importable
	$(PY) tools/run_kernel.py $(KERNEL) --comp $(COMP) --source

demo: setup sample datasets  ## the whole loop on the sample: train demo and demo2, tune their ensemble, run inference (CV + submission)
	$(MAKE) --no-print-directory train EXP=demo
	$(MAKE) --no-print-directory train EXP=demo2
	$(MAKE) --no-print-directory optimize RUNS="shopee-train-demo shopee-train-demo2"
	$(MAKE) --no-print-directory run KERNEL=shopee-inference

timing: build sample datasets  ## inference on 70,000 synthetic test rows on this CPU with the demo's models: the per-stage time table
	$(PY) -m tools.make_timing_sample --sample $(SAMPLE) --out data/timing-70k --rows 70000
	$(PY) tools/run_kernel.py shopee-inference --comp data/timing-70k --output runs/timing-70k --timeout 14400

bench: setup  ## exact kNN against faiss-cpu IndexFlatIP (n = 10k, 35k, 70k; 512-d; k=50) and sparse TF-IDF search
	$(PY) tools/bench_knn.py

test: setup  ## lint, format check and the test suite
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest -q

lint: setup  ## ruff lint only
	$(PY) -m ruff check .

format: setup  ## rewrite files with ruff format
	$(PY) -m ruff format .

clean:  ## remove build/, runs/ and generated data (keeps .venv)
	rm -rf build runs data

include tools/delivery.mk
include tools/train.mk
include tools/optimize.mk
