# Two commands do all the set-up on a fresh machine:
#   make demo   -> virtual environment, torch, the package (runtime dependencies only), then
#                  `forgetir demo`
#   make test   -> the same environment plus the pinned dev tools (the `dev` extra), then lint
#                  and the test suite (which checks the docs' links and generated tables too)
# Each level of set-up has its own stamp file in the venv, so `make demo` never installs the dev
# tools and `make test` after `make demo` only adds them.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch is installed first, pinned, so that the package's range (torch>=2.3) keeps it.
# Which build you get is up to the index: pip's configured one by default (on Linux x86_64 the
# PyPI wheel is the CUDA build, several GB). For the CPU build, point TORCH_INDEX at PyTorch's
# CPU wheels:  make demo TORCH_INDEX=https://download.pytorch.org/whl/cpu
# TORCH_PIN picks another version (e.g. TORCH_PIN='torch==2.5.1'); PIP_EXTRA passes any other
# pip options (e.g. PIP_EXTRA='--no-index --find-links /path/to/wheels' offline).
TORCH_PIN ?= torch==2.13.0
TORCH_INDEX ?=
PIP_EXTRA ?=
RUNTIME := $(VENV)/.forgetir-runtime
DEV := $(VENV)/.forgetir-dev

.PHONY: demo test lint docs-check wheel-check env env-dev

$(RUNTIME): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(PIP_EXTRA) $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) '$(TORCH_PIN)'
	$(BIN)/pip install -q $(PIP_EXTRA) -e .
	touch $@

$(DEV): $(RUNTIME)
	$(BIN)/pip install -q $(PIP_EXTRA) -e '.[dev]'
	touch $@

env: $(RUNTIME)

env-dev: $(DEV)

demo: env
	$(BIN)/forgetir demo

lint: env-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

# The result tables in docs/ regenerated from the committed results files must equal the
# committed text; pytest runs the same check (tests/test_docs_tables.py), this is it alone.
# `python scripts/docs_tables.py --write` rewrites them.
docs-check: env-dev
	$(BIN)/python scripts/docs_tables.py --check

# The model-equivalence tests run a second time on PyTorch's portable kernels: a tolerance that
# only holds for this CPU's SIMD kernels fails here, not on a newcomer's machine.
test: lint
	$(BIN)/pytest
	ATEN_CPU_CAPABILITY=default $(BIN)/pytest -p no:cacheprovider tests/models

# What a user of the package gets: build the wheel, install it (weights included) in a fresh
# venv outside the repository and run a tiny demo from it (.ci/run runs this after `make test`).
wheel-check: env-dev
	TORCH_PIN='$(TORCH_PIN)' TORCH_INDEX='$(TORCH_INDEX)' PIP_EXTRA='$(PIP_EXTRA)' \
		PY='$(PY)' BIN='$(BIN)' .ci/wheel_smoke.sh
