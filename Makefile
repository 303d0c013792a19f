# posfleet: everything a fresh clone needs, with only python3 and make.
#   make demo   create .venv, install, run the end-to-end demo
#   make test   create/update .venv, lint, type-check and run the whole suite
#   make bench  run the benchmarks (figures and ratios beside the references)
#   make fuzz   coverage-guided fuzzing of every parser, FUZZ_SECONDS each (default 60)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: all install demo test lint typecheck pytest bench soak fuzz lock clean

all: test

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Re-install whenever the lock or the project metadata changes.
$(STAMP): requirements.lock pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python scripts/demo.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

# The suite runs on PYTEST_WORKERS pytest-xdist workers: one per CPU, at least 2 (most tests
# wait on subprocesses, ptys and sockets), at most 4 (each worker builds the module fixtures
# it uses and holds PostgreSQL schemas). PYTEST_WORKERS=0 runs in one process, which is
# quicker for a single file: make pytest PYTEST_WORKERS=0 PYTEST_ARGS=tests/x.py
PYTEST_WORKERS ?= $(shell $(PYTHON) -c 'import os; n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(); print(min(4, max(2, n or 1)))')
PYTEST_ARGS ?=
pytest: $(STAMP)
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

test: lint typecheck pytest

bench: $(STAMP)
	$(BIN)/python -m bench

# The chaos soak (issue 18): PostgreSQL on 127.0.0.1:5432, not part of `make test`.
SOAK_ARGS ?=
soak: $(STAMP)
	$(BIN)/python scripts/soak.py $(SOAK_ARGS)

FUZZ_SECONDS ?= 60
fuzz: $(STAMP)
	$(BIN)/python -m fuzz --seconds $(FUZZ_SECONDS)

# Re-pin every dependency (needs network to the package index).
lock:
	$(PYTHON) -m venv /tmp/posfleet-lock && /tmp/posfleet-lock/bin/pip install --quiet pip-tools
	/tmp/posfleet-lock/bin/pip-compile --quiet --extra dev --all-build-deps --generate-hashes \
	  --allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links \
	  -o requirements.lock pyproject.toml

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build *.egg-info
