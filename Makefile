# The commands the README documents. Each target creates .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.DEFAULT_GOAL := help
.PHONY: help venv run test check lint format typecheck pytest tools bench monitoring clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

venv: $(BIN)/.installed  ## create .venv with the service and its test tools

run: venv  ## start the service on its defaults (listens on :10587)
	$(BIN)/smtpeter-exporter

test: venv tools lint typecheck pytest  ## everything CI runs: lint, types and the whole test suite

lint: venv  ## ruff lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: venv  ## apply ruff's formatting and safe fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: venv  ## mypy --strict over the package, tests and benchmarks
	$(BIN)/mypy

pytest: venv  ## the test suite alone
	$(BIN)/pytest

tools:  ## Debian packages the tests run: prometheus, alertmanager, redis-server, wrk
	bash scripts/install-test-tools.sh

monitoring: venv  ## regenerate rules, dashboards and alert routing from monitoring/config.py
	$(BIN)/python -m monitoring

bench: venv  ## benchmarks that print figures (see the README)
	$(BIN)/python -m benchmarks

clean:  ## remove the virtual environment and caches
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
