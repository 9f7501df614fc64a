# Two commands on a fresh machine with Python 3.11+: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: run test migrate seed simulate clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.installed-run: pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@ $(VENV)/.installed-run

migrate: $(VENV)/.installed-run
	$(PY) manage.py migrate --noinput

seed: migrate
	$(PY) manage.py seed_demo

## The whole system on the embedded defaults (SQLite, filesystem broker), in the foreground.
run: seed
	$(PY) manage.py run_embedded

## Push demo cases through a running `make run` (CASES=50).
simulate: $(VENV)/.installed-run
	$(PY) manage.py simulate --cases $(or $(CASES),50)

## The whole test suite, against DATABASE_URL / CELERY_BROKER_URL if set, else embedded.
test: $(VENV)/.installed-test
	$(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf var
