# Two commands: `make run` and `make test`. Both set up .venv on first use.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
TEST_BACKENDS ?= sqlite
TEST_WORKERS ?= auto
PYTEST_ARGS ?=

.PHONY: run test test-all coverage mutate lint bench-ingest bench-delivery bench-summary bench-redaction bench-grouping clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP) ## start the service on SQLite at http://127.0.0.1:8000
	$(VENV)/bin/downvote serve

# One pytest process per core (TEST_WORKERS=0: one in all). Bytecode is cached even where the
# shell says not to: pytest otherwise rewrites every plugin module's asserts on every run (~4 s).
test: $(STAMP) ## the test suite (TEST_BACKENDS=sqlite|postgresql|sqlite,postgresql)
	PYTHONDONTWRITEBYTECODE= DOWNVOTE_TEST_BACKENDS=$(TEST_BACKENDS) \
		$(PY) -m pytest -n $(TEST_WORKERS) $(PYTEST_ARGS)

coverage: $(STAMP) ## line coverage of the suite on SQLite, subprocesses included
	rm -rf .coverage && mkdir -p .coverage
	DOWNVOTE_TEST_BACKENDS=$(TEST_BACKENDS) $(VENV)/bin/coverage run -m pytest -q $(PYTEST_ARGS)
	$(VENV)/bin/coverage combine -q
	$(VENV)/bin/coverage report

mutate: $(STAMP) ## mutation testing of the modules listed under [tool.mutmut] (slow; not in CI)
	$(VENV)/bin/mutmut run --max-children 2
	$(VENV)/bin/mutmut results

test-all: $(STAMP) ## the suite on SQLite and on PostgreSQL (127.0.0.1:5432)
	$(MAKE) test TEST_BACKENDS=sqlite,postgresql

lint: $(STAMP) ## ruff, mypy --strict, hadolint
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/hadolint Dockerfile

bench-ingest: $(STAMP) ## ingest req/s, p50, p99 vs a bare FastAPI endpoint run just before (needs wrk); SQLite, PostgreSQL, --workers 2; median of 3 rounds (~7 min)
	$(PY) benchmarks/ingest.py

bench-delivery: $(STAMP) ## webhook-to-Slack latency and burst drain against a fake Slack
	$(PY) benchmarks/delivery.py

bench-summary: $(STAMP) ## criteria over 1M events, SQLite and PostgreSQL
	$(PY) benchmarks/summary.py

bench-redaction: $(STAMP) ## redaction time at 10 KB and 100 KB of inputs built to backtrack
	$(PY) benchmarks/redaction.py

bench-grouping: $(STAMP) ## group lookup among 1M groups (SQLite, PostgreSQL); grouping's cost to ingest
	$(PY) benchmarks/grouping.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
