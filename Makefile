# Outpost: the two commands are `make demo` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
EXTRAS ?= edge,hub,dev,ros,train,sim
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: help setup dashboard check test unit integration demo default-model schemas services-start services-stop services-status clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[$(EXTRAS)]'
	@touch $(STAMP)

setup: $(STAMP) dashboard ## Create .venv, install Outpost with the test extras, build the dashboard (fast when done)

# The dashboard (dashboard/out, served by the hub at /). Each step runs only when its inputs
# changed: `npm ci` on package-lock.json, the OpenAPI dump on hub/ sources, the type check and
# `next build` on the dashboard's sources. The schema is rewritten only when the API changed.
DASH := dashboard
DASH_MODULES := $(DASH)/node_modules/.installed
DASH_SCHEMA := $(DASH)/src/api/schema.d.ts
DASH_OPENAPI := $(DASH)/.stamp-openapi
DASH_BUILT := $(DASH)/out/.built
DASH_SRC := $(shell find $(DASH)/src $(DASH)/public -type f ! -name schema.d.ts 2>/dev/null) \
	$(DASH)/package.json $(DASH)/package-lock.json $(DASH)/next.config.ts $(DASH)/tsconfig.json
HUB_SRC := $(shell find hub protocol -name '*.py' 2>/dev/null)
NPM_ENV := NEXT_TELEMETRY_DISABLED=1 npm_config_audit=false npm_config_fund=false

$(DASH_MODULES): $(DASH)/package-lock.json $(DASH)/package.json
	cd $(DASH) && $(NPM_ENV) npm ci --no-audit --no-fund
	@touch $@

$(DASH_OPENAPI): $(STAMP) $(HUB_SRC) $(DASH)/scripts/openapi.py $(DASH_MODULES)
	$(PY) $(DASH)/scripts/openapi.py > $(DASH)/openapi.json.tmp
	@if [ -f $(DASH_SCHEMA) ] && cmp -s $(DASH)/openapi.json.tmp $(DASH)/openapi.json; then \
		rm $(DASH)/openapi.json.tmp; echo "dashboard: API unchanged"; \
	else \
		mv $(DASH)/openapi.json.tmp $(DASH)/openapi.json && \
		cd $(DASH) && npx --no-install openapi-typescript openapi.json -o src/api/schema.d.ts; \
	fi
	@touch $@

$(DASH_SCHEMA): | $(DASH_OPENAPI)
	@test -f $@ || { rm -f $(DASH_OPENAPI); $(MAKE) --no-print-directory $(DASH_OPENAPI); }

$(DASH_BUILT): $(DASH_MODULES) $(DASH_SCHEMA) $(DASH_SRC) | $(DASH_OPENAPI)
	cd $(DASH) && npx --no-install tsc --noEmit
	cd $(DASH) && $(NPM_ENV) npx --no-install next build
	@touch $@

dashboard: $(DASH_OPENAPI) $(DASH_BUILT) ## Build the dashboard into dashboard/out (skipped when up to date)

check: setup ## Lint, format check, strict types, import rule
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/pytest -q tests/test_import_rule.py

test: setup ## Start the real dev services, run every test, stop what was started
	dashboard/scripts/ensure-chromium.sh
	deploy/dev/with-services env PYTEST=$(VENV)/bin/pytest deploy/dev/run-tests $(PYTEST_ARGS)

unit: setup ## Tests that need no service
	$(VENV)/bin/pytest -m "not integration" $(PYTEST_ARGS)

integration: setup ## Integration tests only (services must be running)
	$(VENV)/bin/pytest -m integration $(PYTEST_ARGS)

demo: setup dashboard ## Embedded hub with a simulated fleet, and the dashboard
	$(VENV)/bin/outpost demo

# The shipped detector (docs/training.md): simulator datasets, training, held-out evaluation.
DEVICE ?= cpu
MODEL_BUILD := build/default-model
default-model: $(STAMP) ## Retrain models/outpost-sim-detector (about an hour on 2 CPU cores)
	rm -rf $(MODEL_BUILD)
	$(VENV)/bin/outpost sim dataset --out $(MODEL_BUILD)/sim-train --images 1500 --imgsz 320 --seed 7 --min-box 8
	$(VENV)/bin/outpost sim dataset --out $(MODEL_BUILD)/sim-holdout --images 500 --val 0.8 --imgsz 320 --seed 1007 --min-box 8
	$(VENV)/bin/outpost train --data $(MODEL_BUILD)/sim-train/data.yaml --model yolov8n.yaml \
	  --epochs 32 --imgsz 256 --batch 16 --device $(DEVICE) --name outpost-sim-detector \
	  --version 1.0.0 --holdout $(MODEL_BUILD)/sim-holdout/data.yaml --out $(MODEL_BUILD)/model
	mkdir -p models/outpost-sim-detector
	cp $(MODEL_BUILD)/model/model.onnx $(MODEL_BUILD)/model/card.json models/outpost-sim-detector/

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
