# One command to set up and run the main job, one to set up and run the tests:
#   make demo      (venv + install + `python -m pipeline fit` on the committed demo table)
#   make test      (venv + install + pytest)
#   make repro     (venv + install + `dvc repro`: the whole offline pipeline, dataset to artifact; the
#                  demo weights are committed, so a fresh clone re-runs only dataset, resolve and fit)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# the real infinity-emb server the peer tests talk to, in its own environment (transformers<5,
# numpy<2 clash with the project's); rebuilt only when its pin file changes
PEERS_VENV ?= .venv-infinity
PEERS_PIN  := tests/peers/infinity-requirements.txt

.PHONY: setup peers demo repro test test-fast lint format mutate bench clean

setup: $(VENV)/.installed

peers: $(PEERS_VENV)/.installed

# torch first and pinned: its CPU build lies on the package mirror; a looser spec pulled in by
# another package would fetch a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[all,test]'
	touch $@

$(PEERS_VENV)/.installed: $(PEERS_PIN)
	rm -rf $(PEERS_VENV)
	$(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(PEERS_VENV)/bin/python -m pip install --quiet torch==2.13.0
	$(PEERS_VENV)/bin/python -m pip install --quiet -r $(PEERS_PIN)
	touch $@

demo: setup
	$(BIN)/python -m pipeline fit

# dvc runs the stage commands with `python` from PATH: the venv's
repro: setup
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/dvc repro

# everything: what CI and the README's test command run (lint first: it takes seconds)
test: setup peers lint
	$(BIN)/python -m pytest -q

# the unit tests, under two minutes on 2 cores: no test marked slow (models trained or loaded,
# whole stages) or integration (DVC and git, a wheel build, Ray, real third-party servers/clients)
test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow and not integration"

# ruff's lint and format check, and the package's layers (import-linter; also a test)
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# mutation testing (not part of `make test`): mutmut on the modules that decide correctness, each
# against its own tests (mutation/modules.py, at most 15 minutes a module), then the hand-planted
# bugs of mutation/patches/ one at a time; docs/development.md says how to read the results
mutate: setup
	$(BIN)/python mutation/run_mutmut.py
	$(BIN)/python mutation/run_examples.py

bench: setup
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) $(PEERS_VENV) artifacts/calibrators/*/ .pytest_cache
