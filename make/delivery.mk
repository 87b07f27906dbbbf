# Kaggle delivery targets (push, datasets, status, outputs, submit); included by the Makefile.
# Each is a thin wrapper over the `kaggle` CLI through tools/kaggle/delivery.py, which adds the pre-flight before a push
# and turns the CLI's silent failures (exit 0 on a refused push or an ERROR status) into failing targets.
DELIVERY := $(PY) -m tools.kaggle.delivery --build $(BUILD_DIR)
FORCE_FLAG := $(if $(FORCE),--force)
PREFLIGHT_DATA := $(if $(FORCE),,sample datasets)

.PHONY: first-submission model-source competition-data push-inference push-optimize push-train upload-weights wheels status quota wait output submit

competition-data: setup  ## the competition's files through the kaggle CLI into data/shopee-product-matching (OUT=folder), unzipped and checked; use it as COMP=
	$(DELIVERY) competition-data $(if $(OUT),--out $(OUT))

push-inference: setup $(PREFLIGHT_DATA) $(if $(FORCE),,sample-hidden)  ## pre-flight (build, checks, local runs on sample and sample-hidden), push shopee-inference; FORCE=1: no runs
	$(DELIVERY) push-inference --sample $(SAMPLE) --hidden $(SAMPLE)-hidden $(FORCE_FLAG)

push-optimize: setup  ## push the optimiser over RUNS="shopee-train-<exp> ..." (pushed training kernels, attached as sources) and ENCODERS="<slug> ..." (uploaded pretrained encoders): on Kaggle it writes the plan shopee-inference attaches
	$(DELIVERY) push-optimize $(RUNS) $(if $(ENCODERS),--encoders $(ENCODERS))

push-train: setup $(PREFLIGHT_DATA)  ## pre-flight (checks, a smoke run of EXP shrunk to minutes on the sample), push kernels/shopee-train as shopee-train-EXP; FORCE=1: no run
	$(DELIVERY) push-train $(EXP) --sample $(SAMPLE) $(FORCE_FLAG)

upload-weights: setup  ## create or version dataset DATASET=<datasets-meta/ folder or shopee-train-EXP> from WEIGHTS=<folder> (default data/datasets/<slug>)
	$(DELIVERY) upload-weights $(DATASET) $(if $(WEIGHTS),--folder $(WEIGHTS)) $(if $(MESSAGE),--message "$(MESSAGE)")

wheels: setup  ## download tools/env/wheels.txt for Kaggle's image (its Python, manylinux x86_64, binary only) into data/datasets/shopee-wheels
	$(DELIVERY) wheels

status: setup  ## status of KERNEL (folder name under BUILD_DIR or owner/slug) on Kaggle; fails on ERROR or a cancelled run
	$(DELIVERY) status $(KERNEL)

model-source: setup  ## MODEL=owner/model/framework/instance/version: a Kaggle model's files into data/models/<MODEL> (what make run mounts), for model_sources in kernel.yaml
	$(DELIVERY) model-source $(MODEL)

quota: setup  ## the weekly Kaggle GPU hours left (kaggle quota); every push of a GPU kernel prints it first
	$(DELIVERY) quota

wait: setup  ## poll KERNEL's status every EVERY seconds (default 60) until it ends, its log shown as it runs and saved to BUILD_DIR/<kernel>/kaggle-log.txt; fails with Kaggle's message; OUT=dir downloads its output
	$(DELIVERY) wait $(KERNEL) $(if $(EVERY),--every $(EVERY)) $(if $(OUT),--out $(OUT))

output: setup  ## download KERNEL's output files into OUT (default runs/<slug>, read by local runs as a kernel source)
	$(DELIVERY) output $(KERNEL) $(if $(OUT),--out $(OUT))

submit: setup  ## submit the last pushed shopee-inference version (or VERSION=n) to the competition; MESSAGE= optional; WAIT=<seconds>: wait that long at most for its public score (a read every EVERY s, default 60), or its failure class and what to do
	$(DELIVERY) submit $(if $(VERSION),--version $(VERSION)) $(if $(MESSAGE),--message "$(MESSAGE)") $(if $(WAIT),--wait $(WAIT) $(if $(EVERY),--every $(EVERY)))

first-submission: setup $(PREFLIGHT_DATA) $(if $(FORCE),,sample-hidden)  ## from credentials to a scored submission without training: the data, MODELS="hf:... timm:..." as frozen encoders (default multilingual-e5 and SigLIP), their datasets, the optimiser and the inference kernel on Kaggle, the submission (WAIT=seconds for its score; FORCE=1: no local runs); again: goes on from the last finished step
	$(PY) -m tools.kaggle.first_submission --build $(BUILD_DIR) --sample $(SAMPLE) --hidden $(SAMPLE)-hidden $(if $(MODELS),--models $(MODELS)) $(if $(WAIT),--wait $(WAIT)) $(if $(EVERY),--every $(EVERY)) $(FORCE_FLAG)
