# Two commands do everything on a fresh machine with Python 3.11:
#   make demo   - environment from the lock file, sample exports, one DAG run, a summary
#   make test   - the same environment, all tests (make test-fast: the unit tests)
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
export UV_PYTHON_DOWNLOADS := never
export CRMTIER_HOME ?= $(CURDIR)/var
DEMO_CUSTOMERS ?= 5000
DEMO_AS_OF ?= 2026-11-01
SCALE ?= 10

.PHONY: env demo test test-fast lint bench docs clean deploy-env deploy-up deploy-down deploy-status

$(BIN)/uv:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check uv

# --compile-bytecode: uv writes no .pyc by default, and with PYTHONDONTWRITEBYTECODE set (as on CI
# machines) every process would compile Airflow, dbt and GX from source again (GX's import: 17 s -> 8 s)
$(VENV)/.synced: uv.lock pyproject.toml | $(BIN)/uv
	$(BIN)/uv sync --frozen --compile-bytecode --extra dev --python $(BIN)/python
	touch $@

env: $(VENV)/.synced

demo: env
	$(BIN)/crmtier generate --customers $(DEMO_CUSTOMERS) --seed 42 --as-of $(DEMO_AS_OF) --out $(CRMTIER_HOME)/landing
	$(BIN)/crmtier run --landing $(CRMTIER_HOME)/landing --as-of $(DEMO_AS_OF)

# all tests on two workers: each work unit (a module, or the modules sharing a session fixture) runs
# on one worker, the longest first (order and groups: tests/conftest.py)
test: env
	$(BIN)/python -m pytest -q -p no:cacheprovider -n 2 --dist loadfile --no-loadscope-reorder --durations=40 tests

# the unit tier only (no DagRun, dbt, subprocess or DuckDB file): under a minute
test-fast: env
	$(BIN)/python -m pytest -q -p no:cacheprovider -n 2 --dist loadfile --no-loadscope-reorder -m unit tests

# Python (ruff, config in pyproject.toml) and SQL (sqlfluff with the dbt templater, config in .sqlfluff); both
# run, either failing fails. The templater compiles the dbt project: a throwaway warehouse and target, never var/.
lint: env
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; status=0; \
	echo "ruff check ."; $(BIN)/ruff check . || status=1; \
	echo "sqlfluff lint dbt_project"; \
	CRMTIER_HOME=$$tmp CRMTIER_WAREHOUSE=$$tmp/crm.duckdb DBT_TARGET_PATH=$$tmp/target DBT_LOG_PATH=$$tmp/logs \
	DBT_SEND_ANONYMOUS_USAGE_STATS=false $(BIN)/sqlfluff lint dbt_project || status=1; \
	exit $$status

bench: env
	$(BIN)/python -m crmtier.bench --scale $(SCALE)

# dbt docs (models, columns, tests, macros, lineage, the BI exposure) as one page without a server:
# $(CRMTIER_HOME)/dbt-docs/static_index.html; column types come from the home's warehouse once a run built it
docs: env
	mkdir -p $(CRMTIER_HOME)/dbt-docs $(CRMTIER_HOME)/warehouse
	cd dbt_project && DBT_PROFILES_DIR=. DBT_SEND_ANONYMOUS_USAGE_STATS=false DBT_LOG_PATH=$(CRMTIER_HOME)/dbt-docs/logs \
		CRMTIER_WAREHOUSE=$(CRMTIER_HOME)/warehouse/crm.duckdb \
		$(CURDIR)/$(BIN)/dbt docs generate --static --target-path $(CRMTIER_HOME)/dbt-docs

# The docker-compose.yml topology on this machine (PostgreSQL + Airflow services, see deploy/local.py)
ENV_FILE ?= .env
deploy-env: env
	$(BIN)/python deploy/local.py env --env-file $(ENV_FILE)

deploy-up: env
	bash deploy/install-packages.sh
	$(BIN)/python deploy/local.py up --env-file $(ENV_FILE)

deploy-down:
	$(BIN)/python deploy/local.py down

deploy-status:
	$(BIN)/python deploy/local.py status

clean:
	rm -rf var
