# Two commands on a fresh machine with Python 3.11+: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: run test migrate seed simulate bench screenshots clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.installed-run: pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@ $(VENV)/.installed-run

$(VENV)/.installed-bench: pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install --quiet -e ".[bench]"
	touch $@ $(VENV)/.installed-run

migrate: $(VENV)/.installed-run
	$(PY) manage.py migrate --noinput

seed: migrate
	$(PY) manage.py seed_demo --history

## The whole system on the embedded defaults (SQLite, filesystem broker), in the foreground.
run: seed
	$(PY) manage.py run_embedded

## Push demo cases through a running `make run` (CASES=50).
simulate: $(VENV)/.installed-run
	$(PY) manage.py simulate --cases $(or $(CASES),50)

## The whole test suite, against DATABASE_URL / CELERY_BROKER_URL if set, else embedded.
## TEST_CLOCK=23:30 (the next 23:30 UTC) or TEST_CLOCK="2026-12-31 23:30" starts every
## Python process of the run on that UTC moment, ticking (tests/_clock).
test: $(VENV)/.installed-test
	$(if $(TEST_CLOCK),CHAIRSIDE_TEST_CLOCK='$(TEST_CLOCK)' PYTHONPATH='$(CURDIR)/tests/_clock'$${PYTHONPATH:+:$$PYTHONPATH}) $(PY) -m pytest $(PYTEST_ARGS)

## Speed and scale, measured against this machine's PostgreSQL and Redis (started if down):
## prints one table (docs/performance.md). About 14 minutes on 2 cores; BENCH_ARGS=--quick
## for a tenth of the sizes.
bench: $(VENV)/.installed-bench
	bash bench/services.sh
	CHAIRSIDE_VAR_DIR=$${CHAIRSIDE_VAR_DIR:-/tmp/chairside-bench} $(PY) -m bench.pipeline $(BENCH_ARGS)

## The console's main pages from the demo data at 1366 and 1920 px (artifacts/screenshots/),
## and the README's images (docs/screenshots/): docs/screenshots.py, on a throwaway var dir.
screenshots: $(VENV)/.installed-test
	$(PY) docs/screenshots.py

clean:
	rm -rf var
