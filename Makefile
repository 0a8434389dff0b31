# Two commands do all the set-up on a fresh machine:
#   make run    install into .venv, then run the default workflow (config.yaml)
#   make test   install into .venv (with test extras), then run the whole test suite
VENV ?= .venv
PYTHON ?= python3
CORES ?= all
BIN := $(VENV)/bin
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: run test test-fast install

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --disable-pip-version-check -q -e '.[test,slurm,peers,tensorboard]'
	touch $@

install: $(VENV)/.installed

run: install
	$(BIN)/snakemake --cores $(CORES)

test: install
	$(BIN)/pytest -ra

test-fast: install
	$(BIN)/pytest -ra -m "not slow and not slurm"
