# Thin targets: each calls env/ or the workbench CLI.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin

.PHONY: env demo test lint lab doctor bench-synth lock clean

env:
	@bash env/bootstrap.sh

demo: env
	$(BIN)/workbench demo

test: env
	$(BIN)/ruff check .
	$(BIN)/pytest

lint: env
	$(BIN)/ruff check .

lab: env
	$(BIN)/jupyter lab notebooks/

doctor: env
	$(BIN)/workbench doctor

bench-synth: env
	$(BIN)/python benchmarks/synth_build.py

# Regenerate the lock after changing dependencies in pyproject.toml.
lock: env
	$(BIN)/uv pip compile pyproject.toml --all-extras --python-version 3.11 \
		--python-platform x86_64-manylinux_2_28 --generate-hashes -o env/requirements.lock

clean:
	rm -rf outputs releases .pytest_cache
