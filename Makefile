# Two commands for a fresh machine with Python 3.11+ and make: `make dev` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: dev reset migration test lint format bench install clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

dev: $(STAMP)
	$(BIN)/python -m core.devstack

# Wipes the development data (database, Temporal state, files, mail) after asking; FORCE=1 does not ask.
reset: $(STAMP)
	$(BIN)/python -m core.devstack reset $(if $(FORCE),--yes)

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# A new migration, numbered after the current head: make migration name=add_foo [autogenerate=1]
# (autogenerate compares the models with the database in DATABASE_URL, which must be at the head).
migration: $(STAMP)
	@test -n "$(name)" || { echo "usage: make migration name=add_foo [autogenerate=1]" >&2; exit 2; }
	$(BIN)/alembic revision -m "$(name)" --rev-id "$$($(BIN)/python -m migrations.numbering)" $(if $(autogenerate),--autogenerate)

bench: $(STAMP)
	$(BIN)/python -m tests.bench $(ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
