# Ensemble optimiser target (included by the Makefile): tune one inference config on the OOF embeddings of runs.
OPTIMIZE_RUNS = $(or $(RUNS),shopee-train-demo shopee-train-demo2)

.PHONY: optimize

optimize: setup sample  ## search the ensemble of RUNS (default: the demo runs) on their OOF embeddings; writes runs/optimize-ensemble/inference_config.json
	$(PY) -m tools.optimize --build $(BUILD_DIR) $(OPTIMIZE_RUNS)
	$(PY) tools/run_kernel.py optimize-ensemble --comp $(COMP) --build $(BUILD_DIR)
	cat runs/optimize-ensemble/report.md
