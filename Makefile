# TaxoLens: `make app` to use it, `make test` to test it. Both set everything up first, idempotently.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8501

.PHONY: setup assets dataset browser app worker test test-fast bench clean-data

setup: $(STAMP)

# Re-installs only when a requirements file changed. torch comes from this machine's disk at the pin.
$(STAMP): requirements.txt requirements-nodeps.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -r requirements.txt
	$(PY) -m pip install --no-deps -r requirements-nodeps.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	@touch $@

assets: setup
	$(PY) -m core.assets fetch

dataset: assets
	$(PY) -m core.datasets build

# Debian's Chromium for the browser tests (Playwright's own browser download cannot work offline).
browser:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  else echo "Chromium is missing: run 'sudo apt-get install chromium' (needed by tests/e2e)"; exit 2; fi; }

app: dataset
	$(PY) -m ui.app_runner --host $(HOST) --port $(PORT)

worker: dataset
	$(PY) -m core.jobs.worker

# The suite on every core (pytest-xdist), a test file per process, one torch thread each: on 2 cores
# two processes of 2 threads ran slower than one (10m38s vs 10m22s), two of one thread 7m06s (then;
# 5m47s once WordNet loaded faster: the README, under `make test-fast`).
TEST_PROCS ?= auto
PYTEST := OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(PY) -m pytest -n $(TEST_PROCS) --dist loadfile --no-loadscope-reorder

test: dataset browser
	$(PYTEST)

test-fast: setup
	$(PYTEST) tests/unit

bench: dataset
	$(PY) -m bench.run_all

clean-data:
	rm -rf data
