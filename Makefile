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
# checkov in a venv of its own (inside .venv, so it is ignored and removed with it): its exact
# pins conflict with requirements/constraints.txt. Locked in requirements/checkov.txt.
TOOLS_VENV := $(VENV)/tools
TOOLS_STAMP := $(TOOLS_VENV)/.encore-tools-installed

# Air-gapped by default: nothing phones home, nothing is downloaded at run time.
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := true
export DVC_NO_ANALYTICS := 1
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: help install deploy-tools repro robustness test test-extended test-fast lint lint-deploy compile check-compiled bench bench-serve serve clean

help:  ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml requirements/constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q $(TORCH_PIP_ARGS) "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -c requirements/constraints.txt -e '.[dev,deploy,server]'
	@touch $(STAMP)

install: $(STAMP)  ## create .venv and install the pinned dependency set

$(TOOLS_STAMP): requirements/checkov.txt | $(STAMP)
	@test -x $(TOOLS_VENV)/bin/python || $(PYTHON) -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/python -m pip install -q -r requirements/checkov.txt
	@touch $(TOOLS_STAMP)

deploy-tools: $(TOOLS_STAMP)  ## install checkov into its own venv (.venv/tools) for the deployment checks

repro: install  ## run the whole pipeline (dvc repro) on the defaults in params.yaml
	dvc repro
	@echo
	@echo "Done. The evaluation report: reports/evaluation/evaluation.html (summary: reports/evaluation/summary.md)"
	@echo "Results:"
	@echo "  raw logs          data/raw/            (hidden truth apart in data/world/)"
	@echo "  validation report reports/validation.html"
	@echo "  features          data/features/       (Feast repo: feature_repo/, training frame: data/features/train_frame.parquet)"
	@echo "  labels            data/labels/labels.parquet"
	@echo "  reward models     models/reward, models/reward_click   (dvc plots show: training curves)"
	@echo "  policies          models/sft, models/policy (mid-term RL, round 0), models/policy_click (click RL)"
	@echo "  closed loop       models/loop (final policy + reward model: the challenger; rounds.json, loop.png), data/loop (each round)"
	@echo "  registry          metrics/register.json (gate decision), MLflow aliases challenger/champion"
	@echo "  metrics           metrics/*.json        (dvc metrics show)"
	@echo "  MLflow runs       mlflow.db             (mlflow ui --backend-store-uri sqlite:///mlflow.db)"

robustness: install  ## the whole DAG on every world and seed of params.yaml: robustness, one table (docs/robustness.md)
	$(BIN)/python -m pipelines.sweep
	@echo "The table: robustness/robustness.md (figure robustness/robustness.png); each run: robustness/runs/<world>-s<seed>/"

test: install deploy-tools lint  ## lint, then the test suite with one real end-to-end `dvc repro` on tiny data
	$(BIN)/python -m pytest -m "not extended"

test-extended: install deploy-tools  ## the other end-to-end runs (KFP under kfp.local, a user's logs, the suite, RL killed); CI runs them after make test
	$(BIN)/python -m pytest -m extended

test-fast: install deploy-tools lint  ## lint, then the tests without the end-to-end runs
	$(BIN)/python -m pytest -m "not slow"

lint: install  ## ruff: pyflakes, pycodestyle at the configured line length, import order, formatting
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

lint-deploy: install deploy-tools  ## offline checks of docker/ and k8s/: schemas, checkov, hadolint, GPU placement, MLflow on PostgreSQL
	$(BIN)/python -m pytest tests/deploy

compile: install  ## recompile the Kubeflow pipeline specs into pipelines/compiled/
	$(BIN)/python -m pipelines.compile

check-compiled: install  ## fail if pipelines/compiled/ is stale
	$(BIN)/python -m pipelines.compile --check

bench: install  ## run the benchmarks (writes benchmarks/results/*.json)
	$(BIN)/python -m benchmarks.world_throughput
	$(BIN)/python -m benchmarks.label_throughput
	$(BIN)/python -m benchmarks.reward_model_throughput
	$(BIN)/python -m benchmarks.policy_throughput
	$(BIN)/python -m benchmarks.serve_latency

bench-serve: install  ## policy-service latency and slates/s at concurrency 1/8/32 (real server, local Redis)
	$(BIN)/python -m benchmarks.serve_latency

serve: install  ## serve the registered champion over HTTP on :8080 (after make repro; docs/serving.md)
	$(BIN)/python -m components.serve --host 127.0.0.1 --port 8080

clean:  ## remove pipeline outputs and the local MLflow store (not the venv, not the DVC cache)
	rm -rf data/raw data/world data/features data/labels models reports metrics plots local_outputs
	rm -rf mlflow.db mlartifacts mlruns
