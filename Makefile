# Two commands: `make demo` (set up and run the demo) and `make test` (set up and run every test).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
export MARLIN_DATA_DIR ?= $(CURDIR)/var

.PHONY: demo test test-sqlite test-postgres setup system-deps agent-clis lint bench image clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e ".[test,server,bench]"
	touch $(STAMP)

setup: $(STAMP)

system-deps:
	./scripts/system-deps.sh

# Claude Code, Codex CLI, aider and mini-swe-agent for the command-agent tests, pinned, into
# MARLIN_AGENT_TOOLS_DIR (default ~/.cache/marlin/agent-tools); a no-op once installed.
agent-clis: system-deps
	./scripts/agent-clis.sh

demo: setup
	$(BIN)/marlin demo

# Lint and types first, then the whole suite on SQLite, then the database-dependent tests again
# on PostgreSQL.
test: setup system-deps agent-clis lint
	MARLIN_TEST_ARTIFACTS=$(CURDIR)/test-artifacts $(BIN)/pytest -q -n 2 --dist loadgroup
	MARLIN_TEST_DB_ONLY=1 MARLIN_DATABASE_URL=$${MARLIN_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/marlin} \
		$(BIN)/pytest -q -n 2 --dist loadgroup -m "not e2e"

# ruff (lint and format), the import-linter layer contracts, mypy with django-stubs.
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

bench: setup
	for b in benchmarks/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

# The container image (Dockerfile, compose.yaml; docs/deploy.md). Needs a docker daemon and
# access to Docker Hub's python image and the package registries; CI here has neither, so it
# only lints the files (tests/deploy/).
MARLIN_IMAGE ?= marlin:latest
image:
	docker build --tag $(MARLIN_IMAGE) .

clean:
	rm -rf $(VENV) var test-artifacts
