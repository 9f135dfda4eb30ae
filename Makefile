# Every developer action is a target here, and each one installs what it needs
# first, so a fresh machine with only Python 3.11 can run any of them.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install up test unit soak lint bench demo proto docs clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

up: $(STAMP)
	$(BIN)/otc up

test: $(STAMP) lint
	$(BIN)/python -m pytest -q

unit: $(STAMP)
	$(BIN)/python -m pytest -q -m 'not infra'

# Ten minutes of random kills, failpoint crashes and cut connections on a platform
# of its own; the seed is printed, OTC_SOAK_SEED replays a run.
soak: $(STAMP)
	OTC_SOAK_SECONDS=$${OTC_SOAK_SECONDS:-600} $(BIN)/python -m pytest -q -s tests/faults/test_soak.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/otc bench $(BENCH_ARGS)

demo: $(STAMP)
	$(BIN)/otc demo

# Regenerates otc/contracts from proto/; tests fail when the committed code is stale.
proto: $(STAMP)
	$(BIN)/python -m stack.codegen

# Regenerates the drawn state machine and the configuration reference; tests fail
# when the committed ones are stale.
docs: $(STAMP)
	$(BIN)/python -m order_core.domain.diagram > docs/order-lifecycle.md
	$(BIN)/python -m stack.config_docs
	$(BIN)/python -m rfq_service.entrypoints.openapi

clean:
	rm -rf $(VENV) .otc .pytest_cache .mypy_cache .ruff_cache
