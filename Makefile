# The two commands: `make run` and `make test`. Everything else supports them.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 5000
# One venv, two stamps: `make run` installs what serving needs (the app and the
# Stripe simulator); `make test` adds the development tools on top.
RUN_STAMP := $(VENV)/.installed-run
DEV_STAMP := $(VENV)/.installed-dev
PIP := $(BIN)/python -m pip --disable-pip-version-check --quiet

.PHONY: audit run test install install-run lint typecheck test-sqlite test-postgresql e2e bench screenshots translations services clean

$(VENV)/bin/python:
	@$(PYTHON) -m venv $(VENV)

# The runtime packages only (the app is served from the checkout, not built).
$(RUN_STAMP): pyproject.toml requirements/constraints.txt | $(VENV)/bin/python
	@echo "Installing the packages the app needs to run (once; make test adds the tools)..."
	@$(BIN)/python -m devtools.requirements simulator > $(VENV)/requirements-run.txt
	@$(PIP) install -c requirements/constraints.txt -r $(VENV)/requirements-run.txt
	@bash devtools/ensure-pdf-libs.sh
	@touch $(RUN_STAMP)

# The project itself (editable) and the tools for tests, lint and types.
$(DEV_STAMP): $(RUN_STAMP)
	$(PIP) install -c requirements/constraints.txt -e '.[dev]'
	touch $(DEV_STAMP)

## What `make run` needs: runtime packages and compiled catalogues.
install-run: $(RUN_STAMP) translations

# Everything, for `make test`; npm: Node tooling for the browser tests only
# (axe-core), again when the lock changes.
install: $(DEV_STAMP) translations
	@if [ -f package.json ] && ! [ node_modules/.package-lock.json -nt package-lock.json ]; then \
		npm ci --no-audit --no-fund; fi

translations: $(RUN_STAMP)
	@if compgen -G "translations/*/LC_MESSAGES/messages.po" >/dev/null; then \
		$(BIN)/pybabel --quiet compile -d translations; fi

## Serve the app on SQLite with the Stripe simulator (no account or key needed).
run: install-run
	@PORT=$(PORT) $(BIN)/python -m devtools.embedded

## Lint, type-check, then the whole suite on SQLite and on PostgreSQL.
test: install services lint typecheck test-sqlite test-postgresql

services:
	@bash devtools/ensure-services.sh

lint: $(DEV_STAMP)
	$(BIN)/ruff check donations devtools tests bench wsgi.py
	$(BIN)/ruff format --check donations devtools wsgi.py

typecheck: $(DEV_STAMP)
	$(BIN)/mypy
	$(BIN)/mypy --strict --follow-imports=silent donations/providers.py donations/payments/gateway.py donations/payments/stripe_gateway.py donations/money.py

test-sqlite: install
	TEST_DATABASE=sqlite $(BIN)/python -m pytest -q -p no:cacheprovider

test-postgresql: install
	TEST_DATABASE=postgresql $(BIN)/python -m pytest -q -p no:cacheprovider

## The ask, webhook and export ratios against their baselines (bench/README.md); BENCH_ARGS=--quick for a short run.
bench: install
	$(BIN)/python -m bench all $(BENCH_ARGS)

## Refresh the README's screenshots (docs/screenshots) by going through the product in Chromium.
screenshots: install services
	SCREENSHOTS_DIR=docs/screenshots TEST_DATABASE=sqlite $(BIN)/python -m pytest -q -p no:cacheprovider tests/e2e/test_screenshots_browser.py

clean:
	rm -rf $(VENV) instance .pytest_cache .mypy_cache .ruff_cache

## Known vulnerabilities in the locked Python and npm dependencies (exit 2: could not check).
audit: $(DEV_STAMP)
	$(BIN)/python -m devtools.audit
