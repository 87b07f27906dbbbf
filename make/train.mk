# Training targets (included by the Makefile): train one experiment locally, collect the MLflow runs of all of them.
TRAIN_EXP = $(or $(EXP),demo)

.PHONY: train train-hours pull-runs

train: setup sample datasets  ## train EXP (default demo) locally: its kernel built and run offline on COMP; outputs in runs/shopee-train-EXP
	$(PY) -m tools.local.train $(TRAIN_EXP) --comp $(COMP) --build $(BUILD_DIR)

train-hours: setup  ## EXP (a name in experiments/ or a .yaml file, such as a recipe): its projected GPU time per epoch on Kaggle's 2 x T4
	$(PY) -m tools.kaggle.train_hours $(TRAIN_EXP)

pull-runs: setup  ## download the outputs of pushed training kernels into runs/ and merge every run into runs/mlflow.db (mlflow ui)
	$(PY) -m tools.kaggle.pull_runs --build $(BUILD_DIR)
