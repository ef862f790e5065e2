# Two commands do all the set-up on a fresh machine:
#   make demo   -> virtual environment, CPU torch, the package, then `forgetir demo`
#   make test   -> the same environment plus dev tools, then lint and the test suite
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch is pinned here (installed first, so the package's range keeps it).
TORCH_PIN ?= torch==2.13.0

.PHONY: demo test lint env

$(BIN)/forgetir: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH_PIN)
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

env: $(BIN)/forgetir

demo: env
	$(BIN)/forgetir demo

lint: env
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

test: lint
	$(BIN)/pytest
