# halsosamtal: the two commands are `make run` and `make test`. See README.md.
SHELL := /bin/bash
.DEFAULT_GOAL := help

UV_VERSION := 0.13.8
# Use uv from PATH when it is there, else install it (pinned) into .tools from PyPI.
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
export UV_LINK_MODE := copy

.PHONY: help install run test test-fast fault browser lint fmt openapi migrate stop bench-import bench-batch bench-booking bench-demo clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  %-14s %s\n", $$1, $$2}'

.tools/bin/uv:
	python3 -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

.venv/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --extra embedded
	@touch $@

install: .venv/.synced ## Install the environment from pyproject.toml and uv.lock

run: install ## Run the API and the worker on a demo region (Postgres and Redis found or embedded)
	$(UV) run --frozen --no-sync halsosamtal dev run

test: install lint browser ## Lint, type-check and run the whole test suite (what CI runs)
	$(UV) run --frozen --no-sync pytest

test-fast: install ## The test suite without lint
	$(UV) run --frozen --no-sync pytest -x -q

fault: install ## The fault tests alone: own Postgres and Redis restarted, workers killed (also in `make test`)
	$(UV) run --frozen --no-sync pytest -q tests/faults

browser: ## Headless Chromium (HTML report, API docs tests) and Poppler (the printed report's test): Debian's, installed when missing (as root with apt-get)
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian's chromium for the browser tests"; \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; \
	  else echo "warning: no chromium on the PATH; the browser tests will fail (apt-get install chromium)"; fi; }
	@command -v pdftotext >/dev/null && command -v pdfinfo >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian's poppler-utils for the print test"; \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends poppler-utils >/dev/null; \
	  else echo "warning: no pdftotext on the PATH; the print test will fail (apt-get install poppler-utils)"; fi; }

lint: install ## ruff (lint and format check) and mypy --strict
	$(UV) run --frozen --no-sync ruff check .
	$(UV) run --frozen --no-sync ruff format --check .
	$(UV) run --frozen --no-sync mypy

fmt: install ## Format and fix what ruff can
	$(UV) run --frozen --no-sync ruff format .
	$(UV) run --frozen --no-sync ruff check --fix .

openapi: install ## Regenerate openapi/openapi.json from the app
	$(UV) run --frozen --no-sync python -m services.api.openapi

migrate: install ## Bring the database schema up to date
	$(UV) run --frozen --no-sync halsosamtal migrate

stop: install ## Stop the embedded Postgres and Redis, if running
	$(UV) run --frozen --no-sync halsosamtal dev stop

bench-import: install ## Benchmark: import 1,000,000 residents vs a raw COPY
	$(UV) run --frozen --no-sync python bench/import_residents.py

bench-batch: install ## Benchmark: a 2,500,000-resident register's invitation batch
	$(UV) run --frozen --no-sync python bench/batch.py

bench-booking: install ## Benchmark: slot search, booking and a booking race on a running API vs /healthz
	$(UV) run --frozen --no-sync python bench/booking.py

bench-demo: install ## Benchmark: the demo region's year in progress (demo-data --simulate), 50,000 residents
	$(UV) run --frozen --no-sync python bench/demo_year.py

clean: ## Remove the environment and caches (keeps .data)
	rm -rf .venv .tools .pytest_cache .mypy_cache .ruff_cache
