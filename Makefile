# The two set-up commands of the README, on a fresh Debian 12 machine as root:
#   make demo   dry-run the triage playbook against a disposable broken Redis host
#   make test   the whole test suite (lint, types, unit, integration, end-to-end)
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: demo test system-packages

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet -e '.[test]'
	touch $(STAMP)

system-packages:
	sh tests/support/install-test-deps.sh

demo: system-packages $(STAMP)
	$(VENV)/bin/python -m tests.support.demo

test: system-packages $(STAMP)
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/ruff format --check src tests
	$(VENV)/bin/mypy
	$(VENV)/bin/pytest -W error
