# Quick start:   make run     (set up, run the daemon on the offline seeds, serve on 127.0.0.1:8080)
#                make check   (set up, then format check, lint, types and the whole test suite)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: setup run once check test lint types fmt clean

$(BIN)/aggregator: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

setup: $(BIN)/aggregator

once: setup
	$(BIN)/aggregator -c config/aggregator.toml once --offline

run: setup
	@echo "daemon: http://127.0.0.1:8080/all.atom (also all.rss, all.json, /healthz, /metrics); Ctrl-C stops it"
	$(BIN)/aggregator -c config/aggregator.toml run --offline

lint: setup
	$(BIN)/ruff format --check aggregator tests bench
	$(BIN)/ruff check aggregator tests bench

types: setup
	$(BIN)/mypy

test: setup
	$(BIN)/pytest

check: lint types test

fmt: setup
	$(BIN)/ruff format aggregator tests bench
	$(BIN)/ruff check --fix aggregator tests bench

clean:
	rm -rf $(VENV) state public .pytest_cache .mypy_cache .ruff_cache
