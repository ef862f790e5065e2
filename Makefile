# Two commands do all the set-up on a fresh machine:
#   make demo   -> virtual environment, CPU torch, the package, then `forgetir demo`
#   make test   -> the same environment plus dev tools, then lint and the test suite
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch is installed first, pinned, so that the package's range (torch>=2.2) keeps it.
# Which build you get is up to the index: pip's configured one by default (on Linux x86_64 the
# PyPI wheel is the CUDA build, several GB). For the CPU build, point TORCH_INDEX at PyTorch's
# CPU wheels:  make demo TORCH_INDEX=https://download.pytorch.org/whl/cpu
# TORCH_PIN picks another version (e.g. TORCH_PIN='torch==2.5.1'); PIP_EXTRA passes any other
# pip options (e.g. PIP_EXTRA='--no-index --find-links /path/to/wheels' offline).
TORCH_PIN ?= torch==2.13.0
TORCH_INDEX ?=
PIP_EXTRA ?=

.PHONY: demo test lint env

$(BIN)/forgetir: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(PIP_EXTRA) $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) '$(TORCH_PIN)'
	$(BIN)/pip install -q $(PIP_EXTRA) -e '.[dev]'
	touch $@

env: $(BIN)/forgetir

demo: env
	$(BIN)/forgetir demo

lint: env
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

# The model-equivalence tests run a second time on PyTorch's portable kernels: a tolerance that
# only holds for this CPU's SIMD kernels fails here, not on a newcomer's machine.
test: lint
	$(BIN)/pytest
	ATEN_CPU_CAPABILITY=default $(BIN)/pytest -p no:cacheprovider tests/models
