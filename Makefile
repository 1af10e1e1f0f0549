# Concierge developer commands. Each one sets up .venv first if it is missing or out of date.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export SAM_CLI_TELEMETRY := 0
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: run test demo build bench eval test-load redrive lint clean

$(STAMP): requirements-dev.txt layers/common/python/requirements.txt constraints.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11 or newer is needed"'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt -c constraints.txt
	@touch $(STAMP)

## make run: the whole system on this machine (moto, WAHA simulator, API on :8000, sender loop)
run: $(STAMP)
	$(PY) -m devstack

## make test: lint, template validation and the full test suite
test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(VENV)/bin/sam validate --lint --region us-east-1
	$(PY) -m pytest

lint: $(STAMP)
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

## make demo: the guide's two manual tests against a running `make run`
demo: $(STAMP)
	$(PY) -m devstack.demo

## make build: sam build for Lambda (python3.13, arm64), bytecode compiled ahead, then checks
# Lambda's file system is read-only, so without .pyc files every cold start compiles the layer from source.
build: $(STAMP)
	PYENV_VERSION=$${PYENV_VERSION:-3.13.0} $(VENV)/bin/sam build
	PYENV_VERSION=$${PYENV_VERSION:-3.13.0} python3.13 -m compileall -q -j 0 --invalidation-mode unchecked-hash .aws-sam/build
	$(PY) tools/check_build.py .aws-sam/build

## make bench: AWS calls, latency, cold starts (python3.13), sizes, throughput, pacing and cost -> bench/results.json,
# rendered into docs/performance.md. One figure: $(PY) -m bench --only cold_start (see bench/__main__.py).
bench: $(STAMP)
	PYENV_VERSION=$${PYENV_VERSION:-3.13.0} $(PY) -m bench

## make eval: the answering engines on the labelled guest messages of tests/ai/eval -> docs/ai.md
eval: $(STAMP)
	$(PY) -m tools.eval

## make test-load: 1,000 inbound messages through the local stack, with duplicates and WAHA failures
test-load: $(STAMP)
	$(PY) -m pytest tests/load -q -o addopts="" --load-full

## make redrive: move dead-lettered WhatsApp messages back to the outbound queue
redrive: $(STAMP)
	$(PY) -m devstack.redrive

clean:
	rm -rf .aws-sam .pytest_cache .ruff_cache .hypothesis
