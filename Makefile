# Two entry points do all set-up on a fresh machine: `make demo` and `make test`.
# Both create .venv (pinned stack from requirements.txt) when it is missing or stale.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CORES ?= 2
PORT ?= 5000

.PHONY: demo multiclass test test-fast lint format sysdeps mlflow-ui dryrun-paper clean-results venv

venv: $(STAMP)

# requirements.txt pins the whole stack (torch resolves to the local CPU wheel here, CUDA on clusters
# via environment.yml). The editable install puts `salience` on every entry point's path.
$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q -r requirements.txt
	$(BIN)/pip install -q --no-deps -e .
	touch $(STAMP)

# System packages the tests exercise for real: pdflatex (table compile), SLURM + munge (cluster run).
sysdeps:
	@bash .ci/sysdeps.sh

# The whole study on the generated benchmark, then the HTML report of its tables and figures.
demo: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/snakemake --cores $(CORES) --configfile config/config.yaml
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/snakemake --cores $(CORES) --configfile config/config.yaml --report results/report.html
	@echo
	@echo "Demo finished. Prepared data: data/prepared/  Tables: results/tables/  Figures: results/figures/"
	@echo "Report: results/report.html   MLflow store: results/mlflow (browse with: make mlflow-ui)"

# Issue 12: the generated 3-class chest task (gaze3), xent / CYBORG / the DD methods under each
# false_class choice (config/multiclass.yaml; outputs under results/multiclass). Not in the demo.
multiclass: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/snakemake --cores $(CORES) --configfile config/multiclass.yaml
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/snakemake --cores $(CORES) --configfile config/multiclass.yaml --report results/multiclass/report.html
	@echo "Multi-class study finished. Tables: results/multiclass/tables/  Report: results/multiclass/report.html"

# Every test, both tiers (README "Tests"): real Snakemake, SLURM, DVC and MLflow server included.
test: $(STAMP) sysdeps
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python -m pytest -q

# The inner loop: the fast tier only (no Snakemake, SLURM, MLflow server or `dvc repro`), ≤ 3 min on
# 2 cores (BENCHMARKS.md "Tests"). sysdeps: pdflatex for the table-compile test (idempotent).
test-fast: $(STAMP) sysdeps
	PATH=$(abspath $(BIN)):$$PATH OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -m "not integration"

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

format: $(STAMP)
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

# MLflow UI on the demo's store (127.0.0.1:$(PORT)); CONFIG=config/paper.yaml for another study.
CONFIG ?= config/config.yaml
mlflow-ui: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python -m salience ui --port $(PORT) --config $(CONFIG)

# Plan the papers' matrix (SAGE: config/paper.yaml, DD: config/paper-dd.yaml) without running it.
dryrun-paper: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/snakemake -n --quiet rules --configfile config/paper.yaml
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/snakemake -n --quiet rules --configfile config/paper-dd.yaml

# Everything the workflow wrote; results/README.md (git-tracked) stays.
clean-results:
	test ! -d results || find results -mindepth 1 -maxdepth 1 ! -name README.md -exec rm -rf {} +
	rm -rf logs .snakemake
