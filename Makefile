# StreamFlow ingest. `make run` runs both months through Airflow; `make test` runs the suite.
# Settings come from .env; an environment variable of the same name wins.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Feast has a venv of its own: its pins (pandas, pyarrow, SQLAlchemy, protobuf) never meet Airflow's.
FEAST_VENV := .venv-feast
FEAST_STAMP := $(FEAST_VENV)/.installed
# The developer tooling (tools/streamflow_dev) is not part of the shipped package (include/).
LOCAL := PYTHONPATH=include:tools $(PY) -m streamflow_dev

.PHONY: help run test test-pg16 compose-test compose-secrets venv airflow airflow-cli dag-test psql reset stop checks lint \
	data bench docs feast-venv feast-check feast

## Create .venv and install the pinned dependencies (a no-op when they are already in).
venv: $(STAMP)
$(STAMP): requirements.txt requirements-dev.txt constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt -c constraints.txt
	@touch $(STAMP)

## Create .venv-feast with feature_repo/requirements.txt and its constraints (a no-op when they are already in).
feast-venv: $(FEAST_STAMP)
$(FEAST_STAMP): feature_repo/requirements.txt feature_repo/constraints.txt
	@test -x $(FEAST_VENV)/bin/python || $(PYTHON) -m venv $(FEAST_VENV)
	$(FEAST_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r feature_repo/requirements.txt \
		-c feature_repo/constraints.txt
	@touch $(FEAST_STAMP)

## Both months through the DAG on a real scheduler + API server; ends with the course's checks.
run: venv
	$(LOCAL) run

## The whole test suite against a PostgreSQL server the test setup starts itself (the compose stack apart).
## The browser tests drive Debian's chromium: installed here as root on Debian, else the one command is named.
test: venv
	@command -v chromium >/dev/null 2>&1 || { \
	  test "$$(id -u)" = 0 && command -v apt-get >/dev/null || { \
	    echo "make test: the browser tests need Debian's chromium: sudo apt-get install --no-install-recommends chromium"; exit 1; }; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; }
	$(PY) -m pytest -m "not compose" $(PYTEST_ARGS)

## The integration tests again on PostgreSQL 16, what compose deploys (the `airflow`-marked ones are
## left out: they drive the same SQL through Airflow and take ~8 of 11 minutes; everything on 16:
## STREAMFLOW_PG_MAJOR=16 make test).
test-pg16: venv
	STREAMFLOW_PG_MAJOR=16 $(PY) -m pytest -m "integration and not airflow" $(PYTEST_ARGS)

## docker-compose.yml up for real, then the celery scale-out (tests/compose). As root on Debian it installs
## and starts its own Docker engine and builds stand-ins for images it cannot pull (tools/standins/);
## the login tests drive Debian's chromium, installed here like `make test` does.
compose-test: venv
	@docker version >/dev/null 2>&1 || { command -v dockerd >/dev/null && command -v debootstrap >/dev/null; } || { \
	  test "$$(id -u)" = 0 || { echo "compose-test needs docker.io and debootstrap (apt-get, as root)"; exit 1; }; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io debootstrap; }
	@command -v chromium >/dev/null 2>&1 || { \
	  test "$$(id -u)" = 0 && command -v apt-get >/dev/null || { \
	    echo "compose-test: the login tests need Debian's chromium: sudo apt-get install --no-install-recommends chromium"; exit 1; }; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; }
	$(PY) -m pytest -m compose $(PYTEST_ARGS)

## The compose stack's secrets and its users' passwords, written once outside the repository (docs/logins.md):
##   make compose-secrets [DIR=~/.config/streamflow-compose]
compose-secrets:
	$(PYTHON) tools/compose_secrets.py $(DIR)

## Airflow UI/API, scheduler, dag-processor and triggerer (`airflow standalone`) against the local warehouse.
airflow: venv
	$(LOCAL) airflow

## Any Airflow CLI command with the local stack's settings: make airflow-cli ARGS="dags list"
airflow-cli: venv
	@$(LOCAL) airflow-cli $(ARGS)

## One month in-process: make dag-test MONTH=month_001
dag-test: venv
	$(LOCAL) dag-test $(MONTH)

## psql on the warehouse.
psql: venv
	$(LOCAL) psql

## Empty the warehouse (schema recreated) and clear Airflow's run history.
reset: venv
	$(LOCAL) reset

## Stop what the other targets started (Airflow processes, the embedded PostgreSQL).
stop: venv
	$(LOCAL) stop

## Row counts per live table and per snapshot table per as_of.
checks: venv
	$(LOCAL) checks

## feast apply (feature_repo/), then Feast's historical features at each stamped month end and mid-month,
## and its online store, against training_examples (rows, churners, md5); non-zero on any difference.
##   make feast-check [ARGS="--mid-month 2024-02-20T08:00:00+00:00 --report feast-check.json"]
feast-check: venv feast-venv
	$(LOCAL) feast-check -- $(ARGS)

## Any Feast CLI command on feature_repo/ with the warehouse settings: make feast ARGS="feature-views list"
feast: venv feast-venv
	@$(LOCAL) feast -- $(ARGS)

## ruff check . (what CI runs before the tests).
lint: venv
	$(VENV)/bin/ruff check .

## Synthetic months in the real files' exact format (deterministic for a seed):
##   make data N=1000000 MONTHS=3 OUT=.bench-data/1000000 SEED=8613
data: venv
	PYTHONPATH=include:tools $(PY) -m streamflow_dev.generate --users $(or $(N),100000) --months $(or $(MONTHS),3) \
		--out $(or $(OUT),.bench-data/$(or $(N),100000)) --seed $(or $(SEED),8613)

## docs/performance.md from docs/performance.md.in and bench/history.json (make bench does it too).
docs: venv
	PYTHONPATH=include:tools $(PY) -m streamflow_dev.performance_doc

## Upsert vs the course's way vs raw COPY, validation, snapshots, one month through the DAG:
##   make bench [N=...] [MONTHS=24] [HISTORY_N=...] [SKIP_COURSE=1] [SKIP_DAG=1] [SKIP_ANATOMY=1]   (last line: BENCH n=... upsert_s=...)
bench: venv
	N=$(N) MONTHS=$(MONTHS) HISTORY_N=$(HISTORY_N) SKIP_COURSE=$(SKIP_COURSE) SKIP_DAG=$(SKIP_DAG) SKIP_ANATOMY=$(SKIP_ANATOMY) PYTHONPATH=include:tools $(PY) bench/bench.py

## This list: every target with its `##` comment (not the default goal: a bare `make` is `make venv`).
help:
	@awk '/^## / { text = text (text ? " " : "") substr($$0, 4); next } \
	  /^[a-z][a-z0-9-]*:/ && text { split($$0, t, ":"); printf "  make %-14s %s\n", t[1], text } { text = "" }' $(MAKEFILE_LIST)
