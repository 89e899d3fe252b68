# Every target creates .venv and installs what it needs, so each works on a fresh clone.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
STACK  ?= dev

.PHONY: install test test-fast demo run plan diff capacity openapi schema bench model clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# pytest-xdist workers for `make test` and `make test-fast` (auto: one per CPU; 0: one process, e.g. for --pdb).
TEST_WORKERS ?= auto

# Lint (ruff) and types (mypy, configured in pyproject.toml) first, then the whole suite on parallel
# workers, the slow end-to-end tests included (tests/conftest.py: SLOW, and SHARED, the tests that
# share one emulation or process and so run on one worker).
test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m mypy
	AWS_ACCOUNT_ID_ENDPOINT_MODE=disabled $(PY) -m pytest -n $(TEST_WORKERS)

# The inner loop: the suite without the tests marked slow (no lint, no types).
test-fast: $(STAMP)
	AWS_ACCOUNT_ID_ENDPOINT_MODE=disabled $(PY) -m pytest -n $(TEST_WORKERS) -m "not slow"

demo: $(STAMP)
	AWS_ACCOUNT_ID_ENDPOINT_MODE=disabled $(PY) -m fraud_pipeline.local demo --stack $(STACK) --transactions $(or $(N),1000)

run: $(STAMP)
	AWS_ACCOUNT_ID_ENDPOINT_MODE=disabled $(PY) -m fraud_pipeline.local serve --stack $(STACK) --port $(or $(PORT),8080) \
	    --aws-port $(or $(AWS_PORT),5000) $(if $(INFO_FILE),--info-file $(INFO_FILE))

plan: $(STAMP)
	$(PY) -m fraud_pipeline.plan $(STACK)

diff: $(STAMP)
	$(PY) -m fraud_pipeline.plan --diff $(or $(A),staging) $(or $(B),prod)

capacity: $(STAMP)
	$(PY) -m fraud_pipeline.capacity --stack dev --stack staging --stack prod --chart docs/capacity.png --update-docs docs/capacity.md

# docs/openapi.yaml from the program's API (make test checks it is current).
openapi: $(STAMP)
	$(PY) -m fraud_pipeline.openapi

# provider/schema.json, the schema other Pulumi languages generate their SDK from (make test checks it).
schema: $(STAMP)
	$(PY) provider/generate_schema.py

bench: $(STAMP)
	AWS_ACCOUNT_ID_ENDPOINT_MODE=disabled $(PY) -m benchmarks $(BENCH_ARGS)

# The shipped model (handlers/models/default.json), reproduced from the generator: 84 days of
# 10,000 transactions a day (seed 1), trained up to 2026-03-01 with the default 7-day label delay.
MODEL_DATA ?= .cache/history-seed1.csv.gz
model: $(STAMP)
	mkdir -p $(dir $(MODEL_DATA))
	$(PY) -m fraud_pipeline.synthetic --days 84 --per-day 10000 --seed 1 --quiet --out $(MODEL_DATA)
	$(PY) -m fraud_pipeline.backtest train --transactions $(MODEL_DATA) --until 2026-03-01 --out handlers/models/default.json \
		--reproduce "make model (python -m fraud_pipeline.synthetic --days 84 --per-day 10000 --seed 1; python -m fraud_pipeline.backtest train --until 2026-03-01)"

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis *.egg-info .cache
