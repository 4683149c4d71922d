# Set-up and everyday commands. `make demo` and `make test` install everything they need
# into .venv first (PyTorch's CPU build 2.13.0, then this package with its dev extras).
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: install demo test lint bench docs

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[dev]'
	touch $@

demo: install
	$(VENV)/bin/denoise run configs/mnist_conv.yaml

test: install
	$(VENV)/bin/pytest -q

docs: install
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

# The whole checkout, with pyproject.toml's settings: the lint rules, then the formatting.
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: install
	$(PY) scripts/benchmark.py
