# cloudpbx — the two commands: `make run` and `make test` (see README.md).
# Both install whatever is missing on a fresh Debian machine into .venv first.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export CLOUDPBX_DATA_DIR ?= var

.PHONY: run test test-slow install system-deps lint typecheck unit pg-test demo clean

run: install
	$(BIN)/cloudpbx migrate
	$(BIN)/cloudpbx prompts
	$(BIN)/cloudpbx demo
	scripts/build-web.sh
	$(BIN)/cloudpbx run

# Real-time runs (a full fax in real time, ...) are marked slow: `make test-slow` runs them.
test: install system-deps lint typecheck
	scripts/build-web.sh
	$(BIN)/pytest -q -n 2 --dist loadfile -m "not slow"
	scripts/with-postgres.sh $(BIN)/pytest -q -n 2 --dist loadfile tests/api tests/db

test-slow: install system-deps
	$(BIN)/pytest -q -m slow

install: $(STAMP)

$(STAMP): pyproject.toml
	scripts/install-system-deps.sh base
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

system-deps:
	scripts/install-system-deps.sh test

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: install
	$(BIN)/mypy

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
