# Every target creates .venv and installs what it needs, so each works on a fresh clone.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
STACK  ?= dev

.PHONY: install test demo run plan diff capacity bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	AWS_ACCOUNT_ID_ENDPOINT_MODE=disabled $(PY) -m pytest

demo: $(STAMP)
	AWS_ACCOUNT_ID_ENDPOINT_MODE=disabled $(PY) -m fraud_pipeline.local demo --stack $(STACK) --transactions $(or $(N),1000)

run: $(STAMP)
	AWS_ACCOUNT_ID_ENDPOINT_MODE=disabled $(PY) -m fraud_pipeline.local serve --stack $(STACK) --port $(or $(PORT),8080)

plan: $(STAMP)
	$(PY) -m fraud_pipeline.plan $(STACK)

diff: $(STAMP)
	$(PY) -m fraud_pipeline.plan --diff $(or $(A),staging) $(or $(B),prod)

capacity: $(STAMP)
	$(PY) -m fraud_pipeline.capacity --stack dev --stack staging --stack prod --chart docs/capacity.png --update-docs docs/capacity.md

bench: $(STAMP)
	AWS_ACCOUNT_ID_ENDPOINT_MODE=disabled $(PY) -m benchmarks $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis *.egg-info
