# The two commands: `make run` and `make test`. Everything else supports them.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 5000
STAMP := $(VENV)/.installed

.PHONY: run test install lint typecheck test-sqlite test-postgresql e2e bench translations services clean

$(STAMP): pyproject.toml requirements/constraints.txt
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c requirements/constraints.txt -e '.[dev]'
	touch $(STAMP)

# npm: Node tooling for the browser tests only (axe-core), again when the lock changes.
install: $(STAMP) translations
	@if [ -f package.json ] && ! [ node_modules/.package-lock.json -nt package-lock.json ]; then \
		npm ci --no-audit --no-fund; fi

translations: $(STAMP)
	@if compgen -G "translations/*/LC_MESSAGES/messages.po" >/dev/null; then \
		$(BIN)/pybabel compile -d translations >/dev/null; fi

## Serve the app on SQLite with the Stripe simulator (no account or key needed).
run: install
	PORT=$(PORT) $(BIN)/python -m devtools.embedded

## Lint, type-check, then the whole suite on SQLite and on PostgreSQL.
test: install services lint typecheck test-sqlite test-postgresql

services:
	@bash devtools/ensure-services.sh

lint: $(STAMP)
	$(BIN)/ruff check donations devtools tests bench wsgi.py
	$(BIN)/ruff format --check donations devtools wsgi.py

typecheck: $(STAMP)
	$(BIN)/mypy
	$(BIN)/mypy --strict --follow-imports=silent donations/payments/gateway.py donations/payments/stripe_gateway.py donations/money.py

test-sqlite: install
	TEST_DATABASE=sqlite $(BIN)/python -m pytest -q -p no:cacheprovider

test-postgresql: install
	TEST_DATABASE=postgresql $(BIN)/python -m pytest -q -p no:cacheprovider

## GET /support vs. a bare Flask endpoint under gunicorn (ratio); BENCH_ARGS=--quick for a short run.
bench: install
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) instance .pytest_cache .mypy_cache .ruff_cache
