# Ensemble optimiser target (included by the Makefile): tune one inference config on the OOF embeddings of runs.
OPTIMIZE_RUNS = $(if $(or $(RUNS),$(ENCODERS)),$(RUNS),shopee-train-demo shopee-train-demo2)

.PHONY: optimize

optimize: setup sample  ## search the ensemble of RUNS (default: the demo runs) and ENCODERS="<slug> ..." (make pretrained) on the runs' OOF rows, or on train with encoders alone; writes runs/optimize-ensemble/inference_config.json
	$(PY) -m tools.local.optimize --build $(BUILD_DIR) $(OPTIMIZE_RUNS) $(if $(ENCODERS),--encoders $(ENCODERS))
	$(PY) -m tools.local.run_kernel optimize-ensemble --comp $(COMP) --build $(BUILD_DIR)
	cat runs/optimize-ensemble/report.md
