# Quick start:   make run     (set up, poll the offline seeds, serve the outputs on 127.0.0.1:8080)
#                make check   (set up, then format check, lint, types and the whole test suite)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PORT   ?= 8080

.PHONY: setup run once check test lint types fmt clean

$(BIN)/aggregator: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

setup: $(BIN)/aggregator

once: setup
	$(BIN)/aggregator -c config/aggregator.toml once --offline

# Until the daemon (`aggregator run`) lands, serve the rendered outputs with a static server.
run: once
	@echo "serving public/ on http://127.0.0.1:$(PORT)/all.atom (Ctrl-C to stop)"
	$(BIN)/python -m http.server --bind 127.0.0.1 --directory public $(PORT)

lint: setup
	$(BIN)/ruff format --check aggregator tests
	$(BIN)/ruff check aggregator tests

types: setup
	$(BIN)/mypy

test: setup
	$(BIN)/pytest

check: lint types test

fmt: setup
	$(BIN)/ruff format aggregator tests
	$(BIN)/ruff check --fix aggregator tests

clean:
	rm -rf $(VENV) state public .pytest_cache .mypy_cache .ruff_cache
