# Two commands do all the set-up on a fresh machine:
#   make demo   extract the embedded sample dataset (and check, preview it)
#   make test   run the test suite
# and one checks the code (CI runs it before the tests):
#   make lint   ruff (lint + format check) and mypy, configured in pyproject.toml
# Each creates its own virtual environment (.venv) pinned by constraints.txt (CPU torch).
VENV ?= .venv
PYTHON ?= python3
BIN = $(VENV)/bin
DEMO_OUT ?= demo_out

$(BIN)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[test]"
	touch $@

venv: $(BIN)/.installed

$(BIN)/.lint-installed: $(BIN)/.installed
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev]"
	touch $@

lint: $(BIN)/.lint-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

demo: $(BIN)/.installed
	$(BIN)/flowprep extract --dataset sample --out $(DEMO_OUT)/shards --workers 2 --size 64
	$(BIN)/flowprep verify $(DEMO_OUT)/shards
	$(BIN)/flowprep preview $(DEMO_OUT)/shards --key drift_right/drift_right_001 -o $(DEMO_OUT)/preview.png

test: $(BIN)/.installed
	bash scripts/run_tests.sh

.PHONY: venv demo test lint
