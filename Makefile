# Thin targets: each calls env/ or the workbench CLI.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin

.PHONY: env demo test lint lab doctor bench-synth bench-widgets bench-ingest bench-scale lock clean

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

# Cohort builder edit -> count at 100k persons; RELEASE=DIR reuses a built release.
bench-widgets: env
	$(BIN)/python benchmarks/widgets.py $(if $(RELEASE),--release $(RELEASE))

# FHIR NDJSON resources/s and screening CSV rows/s with peak memory (PERSONS, ROWS to size).
bench-ingest: env
	$(BIN)/python benchmarks/ingest.py $(if $(PERSONS),--persons $(PERSONS)) $(if $(ROWS),--csv-rows $(ROWS))

# Cohort latency vs persons and lifelog rows, DuckDB and local Spark (long: builds ~6 releases
# up to 1M persons x 730 days under benchmarks/work). ARGS="--persons 20000 ..." to resize.
bench-scale: env
	$(BIN)/python benchmarks/scale.py $(ARGS)

# Regenerate the lock after changing dependencies in pyproject.toml.
lock: env
	$(BIN)/uv pip compile pyproject.toml --all-extras --python-version 3.11 \
		--python-platform x86_64-manylinux_2_28 --generate-hashes -o env/requirements.lock

clean:
	rm -rf outputs releases .pytest_cache
