# The commands the README documents. Each target creates .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.DEFAULT_GOAL := help
.PHONY: help venv run test check lint format typecheck pytest tools bench bench-ingest profile monitoring image clean

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

tools:  ## Debian packages the tests run: prometheus, alertmanager, redis, wrk, podman, debootstrap
	bash scripts/install-test-tools.sh

monitoring: venv  ## regenerate rules (and PrometheusRule), dashboards, routing from monitoring/config.py
	$(BIN)/python -m monitoring

bench: venv  ## benchmarks that print figures (see the README)
	$(BIN)/python -m benchmarks

bench-ingest: venv  ## the exporter against bare aiohttp under load, scrapes at the cap, memory (~5 min)
	$(BIN)/python -m benchmarks.ingest

profile: venv  ## where a webhook's time goes under load (py-spy; PROFILE_SECONDS=10)
	$(BIN)/python -m benchmarks.ingest_profile $(or $(PROFILE_SECONDS),10)

# The container image (README, "Deployment"): with podman when installed, else docker.
ENGINE ?= $(shell command -v podman || command -v docker)
VERSION := $(shell sed -n 's/^__version__ = "\(.*\)"/\1/p' exporter/__init__.py)
IMAGE ?= smtpeter-exporter:$(VERSION)
# pip in the build trusts this bundle too (a TLS-inspecting proxy's CA); empty to skip.
CA_BUNDLE ?= $(wildcard /etc/ssl/certs/ca-certificates.crt)
, := ,

image:  ## build the container image (IMAGE=name:tag, BASE=another base image)
	@test -n "$(ENGINE)" || { echo "make image needs podman or docker" >&2; exit 1; }
	DOCKER_BUILDKIT=1 $(ENGINE) build \
		$(if $(findstring podman,$(ENGINE)),--format docker) \
		$(if $(BASE),--build-arg BASE=$(BASE)) \
		--build-arg VERSION=$(VERSION) \
		--build-arg REVISION=$$(git rev-parse --short HEAD 2>/dev/null || echo unknown) \
		$(if $(CA_BUNDLE),--secret id=pip-ca$(,)src=$(CA_BUNDLE)) \
		--tag $(IMAGE) .

clean:  ## remove the virtual environment and caches
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
