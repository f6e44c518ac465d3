# Encore: two commands on a fresh machine -> `make repro` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch goes in first and pinned: an unpinned torch drags in a multi-GB CUDA build.
# Outside this machine, a CPU-only wheel: make repro TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu"
TORCH_SPEC ?= torch==2.13.0
TORCH_PIP_ARGS ?=
STAMP := $(VENV)/.encore-installed

# Air-gapped by default: nothing phones home, nothing is downloaded at run time.
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := true
export DVC_NO_ANALYTICS := 1
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: help install repro test test-fast compile check-compiled bench clean

help:  ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml requirements/constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q $(TORCH_PIP_ARGS) "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -c requirements/constraints.txt -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)  ## create .venv and install the pinned dependency set

repro: install  ## run the whole pipeline (dvc repro) on the defaults in params.yaml
	dvc repro
	@echo
	@echo "Done. Results:"
	@echo "  raw logs          data/raw/            (hidden truth apart in data/world/)"
	@echo "  validation report reports/validation.html"
	@echo "  metrics           metrics/*.json        (dvc metrics show)"
	@echo "  MLflow runs       mlflow.db             (mlflow ui --backend-store-uri sqlite:///mlflow.db)"

test: install  ## run the whole test suite, end-to-end runs on tiny data included
	$(BIN)/python -m pytest

test-fast: install  ## the tests without the end-to-end runs
	$(BIN)/python -m pytest -m "not slow"

compile: install  ## recompile the Kubeflow pipeline specs into pipelines/compiled/
	$(BIN)/python -m pipelines.compile

check-compiled: install  ## fail if pipelines/compiled/ is stale
	$(BIN)/python -m pipelines.compile --check

bench: install  ## run the benchmarks (writes benchmarks/results/*.json)
	$(BIN)/python -m benchmarks.world_throughput

clean:  ## remove pipeline outputs (not the venv)
	rm -rf data/raw data/world reports metrics local_outputs
