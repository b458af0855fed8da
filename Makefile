# carshare: `make run` brings the whole product up, `make test` runs the whole suite.
# With DATABASE_URL / REDIS_URL unset, both start embedded PostgreSQL and Redis (.local/).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
DEV := $(PY) -m carshare.devservers --
# Procfile commands (python, celery) resolve to the project virtualenv.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export DJANGO_SETTINGS_MODULE := carshare.settings

.PHONY: run test simulator lint format check bench services-up services-down clean

# Production installs requirements.txt alone; every target here also needs the development,
# test and lint tools of requirements-dev.txt (which includes requirements.txt).
$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

## Web, Celery workers and beat (honcho over the Procfile), embedded servers and the vehicle-cloud
## simulator; the demo cars are connected to it. Ctrl-C stops all.
run: $(VENV)/.installed
	DJANGO_DEBUG=$${DJANGO_DEBUG:-1} $(PY) -m carshare.devservers --with-simulator -- sh -c '\
	  $(PY) manage.py migrate --noinput && \
	  $(PY) manage.py load_demo_data && \
	  exec $(VENV)/bin/honcho --no-colour start -f Procfile'

## The whole test suite against real PostgreSQL and Redis (embedded unless the URLs are set).
test: $(VENV)/.installed
	$(DEV) $(PY) -m pytest $(PYTEST_ARGS)

## The Smartcar-compatible vehicle-cloud simulator alone (port: SIMULATOR_PORT, default 8100).
simulator: $(VENV)/.installed
	$(PY) -m simulator

## ruff (lint and format), the import layers (import-linter) and the types (mypy, django-stubs).
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	DJANGO_DEBUG=1 $(VENV)/bin/mypy

format: $(VENV)/.installed
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

## Django's own checks, migrations in sync, and the deployment checklist with production settings.
check: $(VENV)/.installed
	DJANGO_DEBUG=1 $(DEV) sh -c '$(PY) manage.py check && $(PY) manage.py makemigrations --check --dry-run'
	DJANGO_SECRET_KEY=check-deploy-$$(date +%s)-a-long-random-looking-production-secret-value \
	  DJANGO_ALLOWED_HOSTS=carshare.example CARSHARE_TOKEN_KEYS=$$($(PY) -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())") \
	  SMARTCAR_MODE=simulator SMARTCAR_CLIENT_SECRET=check-deploy-$$($(PY) -c "import secrets; print(secrets.token_urlsafe(24))") \
	  $(PY) manage.py check --deploy --fail-level WARNING

bench: $(VENV)/.installed
	$(DEV) $(PY) bench/lock_now_overhead.py
	$(DEV) $(PY) bench/browse_availability.py
	$(DEV) $(PY) bench/booking_inserts.py
	$(DEV) $(PY) bench/trip_start_precision.py
	$(PY) bench/simulator_throughput.py

services-up: $(VENV)/.installed
	$(PY) -m carshare.devservers --up

services-down: $(VENV)/.installed
	$(PY) -m carshare.devservers --down

clean:
	$(PY) -m carshare.devservers --down || true
	rm -rf .local
