# textroute: one venv, one test command (the one CI runs), one main job.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: setup demo test test-fast lint typecheck bench clean

setup: $(STAMP)

# torch==2.13.0 is the CPU build on disk (pinned in pyproject); lower bounds keep pip from
# backtracking into old sdists.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

## The main job: embedded broker, models (trained quickly if missing), worker, sample traffic.
demo: setup
	$(BIN)/textroute demo

## The test command CI runs (.ci/run calls exactly this).
test: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -q -rs --durations=15

test-fast: setup
	$(BIN)/python -m pytest -q -m "not integration and not slow"

lint: setup
	$(BIN)/ruff check schemas inference training stream tests bench
	$(BIN)/ruff format --check schemas inference training stream tests bench

typecheck: setup
	$(BIN)/mypy

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
