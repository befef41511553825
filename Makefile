# portfol.io: `make help` lists the targets. Every target does the set-up it still needs by itself.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help setup browser stack-up stack-down stack-status run test test-unit lint format bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

setup: $(STAMP) ## create .venv and install the project with its pinned dependencies

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[trainer,report,dashboard,dev]'
	@touch $@

browser: ## install headless Chromium for the page test where apt can (else the test is skipped, saying why)
	@bash infra/local/browser.sh

stack-up: setup ## start the local Kafka and FerretDB (no Docker), wait until both answer
	@bash infra/local/stack.sh up

stack-down: ## stop the local Kafka and FerretDB started by stack-up
	@bash infra/local/stack.sh down

stack-status: ## say whether the local stack runs
	@bash infra/local/stack.sh status

run: stack-up ## run producer, sink, trainer and the dashboard locally with a live view (Ctrl-C stops all)
	@$(VENV)/bin/portfolio run

test: stack-up browser ## run every test (unit, integration against the real local stack, the page in Chromium)
	$(PY) -m pytest

test-unit: setup ## run the unit tests only (no servers needed)
	$(PY) -m pytest tests/unit

lint: setup ## ruff format check, ruff (every rule family less the listed ignores), mypy --strict
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy shared services testkit tests bench

format: setup ## apply ruff format and safe fixes
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: stack-up ## run every benchmark in bench/ and write bench/results/summary.md
	$(PY) -m bench.run_all

clean: stack-down ## remove the local stack's data and the venv
	rm -rf .stack $(VENV)
