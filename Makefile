# Two set-up commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
SYSTEM := $(VENV)/.system-packages
DEMO_OUT ?= runs/demo

.PHONY: install demo test lint bench clean lock lock-airflow airflow-venv

# Installs come from the lock file (the versions CI tested); the package itself (and its compiled decoder) on top.
$(STAMP): requirements.lock pyproject.toml src/nextbest/data/_historic_scan.c
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q -r requirements.lock
	$(PIP) install -q --no-deps -e .
	touch $(STAMP)

# Refresh the lock: a fresh venv from pyproject.toml's ranges, frozen. A CPU build of PyTorch lies on disk; an
# unpinned torch would pull a multi-GB CUDA build, so it is installed first, pinned.
LOCK_VENV := .venv-lock
lock:
	rm -rf $(LOCK_VENV)
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/pip install -q --upgrade pip
	$(LOCK_VENV)/bin/pip install -q torch==2.13.0
	$(LOCK_VENV)/bin/pip install -q -e ".[all]"
	{ echo "# The exact versions make test and make demo install (CPU build of torch from this machine's disk)."; \
	  echo "# Refresh on purpose, never by accident: \`make lock\` (a fresh venv from pyproject.toml's ranges, frozen)."; \
	  $(LOCK_VENV)/bin/pip freeze --all --exclude-editable; } > requirements.lock
	rm -rf $(LOCK_VENV)

# Apache Airflow in its own virtualenv (it pins much of the web stack), from its own lock file, with nextbest and
# the extras the session pipeline's steps import (models: scikit-learn, LightGBM; lake: DuckDB, fsspec; rl: PPO).
# tests/test_pipeline_airflow.py runs the DAG with this venv's `airflow` command.
AIRFLOW_VENV  := .venv-airflow
AIRFLOW_STAMP := $(AIRFLOW_VENV)/.installed
AIRFLOW_EXTRAS := airflow,models,lake,rl
$(AIRFLOW_STAMP): requirements-airflow.lock pyproject.toml src/nextbest/data/_historic_scan.c
	test -x $(AIRFLOW_VENV)/bin/python || $(PYTHON) -m venv $(AIRFLOW_VENV)
	$(AIRFLOW_VENV)/bin/pip install -q -r requirements-airflow.lock
	$(AIRFLOW_VENV)/bin/pip install -q --no-deps -e .
	touch $(AIRFLOW_STAMP)

airflow-venv: $(AIRFLOW_STAMP)

# Refresh the Airflow venv's lock the same way: a fresh venv from pyproject.toml's ranges (the newest Airflow they
# allow), frozen.
AIRFLOW_LOCK_VENV := .venv-lock-airflow
lock-airflow:
	rm -rf $(AIRFLOW_LOCK_VENV)
	$(PYTHON) -m venv $(AIRFLOW_LOCK_VENV)
	$(AIRFLOW_LOCK_VENV)/bin/pip install -q --upgrade pip
	$(AIRFLOW_LOCK_VENV)/bin/pip install -q torch==2.13.0
	$(AIRFLOW_LOCK_VENV)/bin/pip install -q -e ".[$(AIRFLOW_EXTRAS)]"
	{ echo "# The exact versions of the Airflow venv ($(AIRFLOW_VENV), made by make test; CPU build of torch from this machine's disk)."; \
	  echo "# Refresh on purpose, never by accident: \`make lock-airflow\` (a fresh venv from pyproject.toml's ranges, frozen)."; \
	  $(AIRFLOW_LOCK_VENV)/bin/pip freeze --all --exclude-editable; } > requirements-airflow.lock
	rm -rf $(AIRFLOW_LOCK_VENV)

# Services the tests use for real: Debian's Chromium (browser tests), PostgreSQL (platform tests) and a Java
# runtime (the PMML converter and evaluator).
$(SYSTEM):
	@if ! command -v chromium >/dev/null 2>&1 || ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 \
		|| ! command -v java >/dev/null 2>&1; then \
		echo "installing Debian packages: chromium postgresql default-jre-headless"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			chromium postgresql default-jre-headless >/dev/null; \
	fi
	@mkdir -p $(VENV) && touch $(SYSTEM)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/nextbest crm demo --out $(DEMO_OUT)
	$(VENV)/bin/nextbest target demo --out $(DEMO_OUT)/targeting
	$(VENV)/bin/nextbest ab demo --out $(DEMO_OUT)/ab
	$(VENV)/bin/nextbest demo loop --out $(DEMO_OUT)/loop --shop $(DEMO_OUT)/ab
	$(VENV)/bin/nextbest sessions explore --out $(DEMO_OUT)/sessions/explore.parquet
	$(VENV)/bin/nextbest sessions pipeline --source synthetic --lake $(DEMO_OUT)/sessions/lake --out $(DEMO_OUT)/sessions \
		--strategy-log $(DEMO_OUT)/sessions/explore.parquet

test: $(STAMP) $(SYSTEM) $(AIRFLOW_STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/lint-imports

bench: $(STAMP)
	@for f in benchmarks/*.py; do $(PY) $$f || exit 1; done

clean:
	rm -rf $(VENV) $(AIRFLOW_VENV) runs .pytest_cache .ruff_cache
