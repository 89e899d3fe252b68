# Every target creates .venv and installs what it needs, so each works on a fresh clone.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
STACK  ?= dev

.PHONY: install test plan diff capacity clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	AWS_ACCOUNT_ID_ENDPOINT_MODE=disabled $(PY) -m pytest

plan: $(STAMP)
	$(PY) -m fraud_pipeline.plan $(STACK)

diff: $(STAMP)
	$(PY) -m fraud_pipeline.plan --diff $(or $(A),staging) $(or $(B),prod)

capacity: $(STAMP)
	$(PY) -m fraud_pipeline.capacity --stack dev --stack staging --stack prod --chart docs/capacity.png --update-docs docs/capacity.md

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis *.egg-info
