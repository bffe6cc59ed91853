# Outpost: the two commands are `make demo` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
EXTRAS ?= edge,hub,dev,ros,train
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: help setup check test unit integration demo schemas services-start services-stop services-status clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[$(EXTRAS)]'
	@touch $(STAMP)

setup: $(STAMP) ## Create .venv and install Outpost with the extras the tests need (fast when done)

check: setup ## Lint, format check, strict types, import rule
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/pytest -q tests/test_import_rule.py

test: setup ## Start the real dev services, run every test, stop what was started
	deploy/dev/with-services $(VENV)/bin/pytest $(PYTEST_ARGS)

unit: setup ## Tests that need no service
	$(VENV)/bin/pytest -m "not integration" $(PYTEST_ARGS)

integration: setup ## Integration tests only (services must be running)
	$(VENV)/bin/pytest -m integration $(PYTEST_ARGS)

demo: setup ## Embedded hub with a simulated fleet, and the dashboard
	$(VENV)/bin/outpost demo

schemas: setup ## Regenerate protocol/schemas after changing a message model
	$(PY) -m protocol.schema

services-start: ## Start Mosquitto, PostgreSQL and Kafka on loopback
	deploy/dev/services start

services-stop: ## Stop the dev services
	deploy/dev/services stop

services-status: ## Show the dev services
	deploy/dev/services status

clean: ## Remove caches (keeps .venv and .dev)
	rm -rf .pytest_cache .mypy_cache .ruff_cache .hypothesis build *.egg-info
