# c360 — every target bootstraps what it needs on a fresh machine (Python 3.11, git, make).
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
UV_VERSION := 0.13.9
UV := .uv/bin/uv
VENV := .venv
BIN := $(VENV)/bin

export C360_HOME ?= $(CURDIR)/.c360
export C360_WAREHOUSE ?= $(C360_HOME)/warehouse.duckdb
export C360_LANDING_DIR ?= $(C360_HOME)/landing
export C360_OUTBOX_DIR ?= $(C360_HOME)/outbox
export C360_DUCKDB_TEMP_DIR ?= $(C360_HOME)/tmp
export DAGSTER_HOME ?= $(C360_HOME)/dagster
export DAGSTER_DISABLE_TELEMETRY := 1

CUSTOMERS ?= 50000
SEED ?= 42
AS_OF ?= $(shell date -u -d yesterday +%F)

.PHONY: help install manifest demo test lint unit ui bench system-deps clean mailman spark spark-server docs

help:
	@echo "make demo   generate $(CUSTOMERS) customers and run the nightly pipeline (DuckDB), print a summary"
	@echo "make test   install test dependencies (Postgres, Chromium), run ruff, sqlfluff and pytest"
	@echo "make ui     open the Dagster UI on http://127.0.0.1:3000"
	@echo "make bench  identity connected-components benchmark, 5M nodes (see docs/identity.md)"
	@echo "make spark-server  a local Spark Thrift Server on 127.0.0.1:$${C360_SPARK_PORT:-10000} (its venv: make spark); then: cd dbt_project && ../.venv-spark/bin/dbt build --target spark"
	@echo "make docs   dbt docs (descriptions, lineage, exposures) as one HTML page under $$C360_HOME/dbt_docs"

$(UV):
	$(PYTHON) -m venv .uv
	.uv/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# The locked environment; re-synced whenever the lock changes.
$(VENV)/.synced: uv.lock pyproject.toml | $(UV)
	$(UV) sync --frozen --python $(PYTHON)
	@touch $@

install: $(VENV)/.synced

# The dbt manifest must exist before the Dagster code location loads (no dbt parse at import).
dbt_project/target/manifest.json: $(VENV)/.synced $(shell find dbt_project/models dbt_project/macros -type f 2>/dev/null) dbt_project/dbt_project.yml
	cd dbt_project && ../$(BIN)/dbt parse --profiles-dir . --quiet
	@touch $@

manifest: dbt_project/target/manifest.json

# dbt docs (descriptions, lineage, exposures) as one self-contained page; rendered against an empty
# scratch warehouse so it never opens (or locks) the one a run writes.
docs: install manifest
	@scratch=$$(mktemp -d); trap 'rm -rf "$$scratch"' EXIT; mkdir -p "$$scratch/tmp"; \
	cd dbt_project && C360_WAREHOUSE="$$scratch/warehouse.duckdb" C360_DUCKDB_TEMP_DIR="$$scratch/tmp" \
	../$(BIN)/dbt docs generate --profiles-dir . --quiet --empty-catalog --static --vars "{as_of: $$(date -u +%F)}" \
	  --target-path "$(C360_HOME)/dbt_docs"
	@echo "dbt docs: $(C360_HOME)/dbt_docs/static_index.html"

demo: install manifest
	@start=$$(date +%s); \
	$(BIN)/c360 generate --customers $(CUSTOMERS) --seed $(SEED) --as-of $(AS_OF) && \
	$(BIN)/c360 run --as-of $(AS_OF); rc=$$?; \
	echo ""; echo "make demo finished in $$(( $$(date +%s) - start ))s (exit $$rc)."; \
	echo "Open the Dagster UI with: make ui   (then http://127.0.0.1:3000)"; exit $$rc

# System packages the tests need: a real Postgres server, Java 17 for local Spark and headless Chromium.
system-deps:
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null; then \
		echo "installing postgresql (server binaries for the tests)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; fi
	@if ! command -v java >/dev/null; then \
		echo "installing java (local Spark for the spark dbt target's tests)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless >/dev/null; fi
	@if ! command -v chromium >/dev/null; then \
		echo "installing chromium (browser test)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; fi

# sqlfluff's dbt templater opens the warehouse: lint renders against an empty scratch home, never
# against what a developer's C360_HOME holds (a demo's tables change how some models render).
lint: install manifest
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/c360 segments compile --check
	$(BIN)/c360 contracts compile --check
	$(BIN)/python -m orchestration.contracts.lint
	@scratch=$$(mktemp -d); trap 'rm -rf "$$scratch"' EXIT; mkdir -p "$$scratch/tmp"; \
	C360_HOME="$$scratch" C360_WAREHOUSE="$$scratch/warehouse.duckdb" C360_DUCKDB_TEMP_DIR="$$scratch/tmp" \
	$(BIN)/sqlfluff lint dbt_project --processes 2
	$(BIN)/python -c "from orchestration.instance import ensure_instance; ensure_instance()"
	$(BIN)/dg check defs

# the warm dbt server the suite started (orchestration/dbt_warm.py) is stopped whatever the result;
# TEST_WORKERS: pytest-xdist workers (tests of one xdist_group share a worker)
TEST_WORKERS ?= 2
test: install system-deps mailman spark manifest lint
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadgroup --durations=15; status=$$?; \
	$(BIN)/python -m orchestration.dbt_warm --stop; exit $$status

unit: install spark manifest
	$(BIN)/pytest tests/unit -q

ui: install manifest
	@mkdir -p $(DAGSTER_HOME); $(BIN)/python -c "from orchestration.instance import ensure_instance; ensure_instance()"
	@# the partitions start at the warehouse's first night unless C360_PARTITIONS_START says otherwise
	C360_PARTITIONS_START="$${C360_PARTITIONS_START:-$$($(BIN)/python -m orchestration.first_night)}" \
		$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

bench: install manifest
	$(BIN)/python bench/identity_cc.py --identifiers $(or $(IDENTIFIERS),5000000)

clean:
	rm -rf .c360 dbt_project/target dbt_project/logs .pytest_cache

# Side venvs for what conflicts with the project's own, each from its lock: .venv-NAME from
# requirements/NAME.txt (re-lock with
# `.uv/bin/uv pip compile requirements/NAME.in --python-version 3.11 -o requirements/NAME.txt`).
.venv-%/.installed: requirements/%.txt | $(UV)
	$(UV) venv --allow-existing --python $(PYTHON) .venv-$*
	$(UV) pip sync --python .venv-$*/bin/python $<
	@touch $@

# GNU Mailman 3 core for the mailing-list destination's test (its dependencies conflict with the
# project's). mailman 3.3.10 needs SQLAlchemy 2.0 (2.1 breaks its REST collections).
MAILMAN_VENV := .venv-mailman
mailman: $(MAILMAN_VENV)/.installed

# Local Spark for the spark dbt target (`dbt build --target spark`, docs/scale.md): pyspark stays
# out of the project's venv, where Great Expectations would import it in every process. Java 17
# comes from system-deps.
SPARK_VENV := .venv-spark
spark: $(SPARK_VENV)/.installed

# A local Spark Thrift Server in the foreground, its warehouse in C360_SPARK_WAREHOUSE: what the
# spark dbt target and the Python side's Spark connection reach (C360_SPARK_HOST/PORT).
spark-server: install spark system-deps
	$(BIN)/python -m orchestration.engine.spark $${C360_SPARK_PORT:-10000}
