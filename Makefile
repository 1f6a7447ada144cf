# Two commands for a fresh machine with Python 3.11+ and make: `make dev` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CHROMIUM := /usr/bin/chromium

# The exact versions to install, with the hashes of their files (docs/dependencies.md): `make lock` writes it.
LOCK := requirements.lock
# What the image installs: the same versions, without the test extra (Dockerfile).
RUNTIME_LOCK := requirements-runtime.lock
# The resolver behind `make lock`, installed only there: installing from the lock needs nothing but pip.
LOCK_TOOL := uv==0.13.9
PIP := $(BIN)/python -m pip --disable-pip-version-check

.PHONY: dev reset migration test lint format bench install browser promtool pgbouncer clean lock

# The venv's own pip installs wheels only, each checked against the lock's hashes (a missing pin or hash fails);
# then the project itself, editable, without dependencies; `pip check` catches a lock older than pyproject.toml.
$(STAMP): pyproject.toml $(LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --require-hashes --only-binary :all: -r $(LOCK)
	$(PIP) install --quiet --no-deps -e .
	$(PIP) check || { echo "pyproject.toml changed? make lock. A .venv from before? make clean" >&2; exit 1; }
	touch $(STAMP)

install: $(STAMP) browser promtool pgbouncer

# The browser tests (tests/api_docs) drive Debian's chromium through Playwright (never `playwright install`, which
# downloads a browser build). Installed when missing, where apt-get exists and we are root; elsewhere a note, and
# those tests skip saying why.
browser:
	@if [ -x $(CHROMIUM) ]; then :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		echo "installing chromium for the browser tests (apt-get)"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	else \
		echo "note: no $(CHROMIUM) and no apt-get as root to install it: the browser tests in tests/api_docs will skip"; \
	fi

# The alert rules' tests (tests/operations) run Debian's promtool (`promtool check rules`, `promtool test rules`),
# from the prometheus package: installed when missing, where apt-get exists and we are root; elsewhere a note, and
# those tests skip saying why.
PROMTOOL := /usr/bin/promtool
promtool:
	@if [ -x $(PROMTOOL) ] || command -v promtool >/dev/null 2>&1; then :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		echo "installing promtool for the alert rule tests (apt-get install prometheus)"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus >/dev/null; \
	else \
		echo "note: no promtool and no apt-get as root to install it: the alert rule tests in tests/operations will skip"; \
	fi

# The pooling tests (tests/pooling) start a private PgBouncer in transaction mode from Debian's pgbouncer package
# (never its system service): installed when missing, where apt-get exists and we are root; elsewhere a note, and
# those tests skip saying why.
PGBOUNCER := /usr/sbin/pgbouncer
pgbouncer:
	@if [ -x $(PGBOUNCER) ] || command -v pgbouncer >/dev/null 2>&1; then :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		echo "installing pgbouncer for the pooling tests (apt-get)"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -qq && apt-get install -y -qq --no-install-recommends pgbouncer >/dev/null; \
	else \
		echo "note: no pgbouncer and no apt-get as root to install it: the pooling tests in tests/pooling will skip"; \
	fi

dev: $(STAMP)
	$(BIN)/python -m core.devstack

# Wipes the development data (database, Temporal state, files, mail) after asking; FORCE=1 does not ask.
reset: $(STAMP)
	$(BIN)/python -m core.devstack reset $(if $(FORCE),--yes)

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

test: lint browser promtool pgbouncer
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

# Re-resolves $(LOCK) from pyproject.toml (the test extra included) for every platform and Python 3.11+, keeping
# the pins that still fit: upgrade=1 takes the newest of everything, package=NAME the newest of one.
lock:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet $(LOCK_TOOL)
	$(BIN)/uv pip compile --quiet pyproject.toml --extra test --universal --python-version 3.11 --generate-hashes \
		$(if $(upgrade),--upgrade) $(if $(package),--upgrade-package $(package)) \
		--custom-compile-command 'make lock' --output-file $(LOCK)
	$(BIN)/uv pip compile --quiet pyproject.toml --universal --python-version 3.11 --generate-hashes \
		--constraints $(LOCK) --custom-compile-command 'make lock' --output-file $(RUNTIME_LOCK)

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
