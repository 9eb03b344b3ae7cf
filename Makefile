# Two commands do all the set-up on a fresh machine:
#   make run   - create .venv/, install the package, run the main job on synthetic data
#   make test  - the same .venv/ plus the test dependencies, then the whole suite
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# pip (not uv): only pip finds the local CPU build of torch; pyproject caps torch < 2.14.
RUN_STAMP := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test

.PHONY: run test lint bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(RUN_STAMP): pyproject.toml | $(PY)
	$(PIP) install --quiet -e '.[serve,deep,spark,rank]'
	touch $@

$(TEST_STAMP): pyproject.toml | $(PY)
	$(PIP) install --quiet -e '.[serve,deep,spark,rank,test,notebooks]'
	touch $@ $(RUN_STAMP)

run: $(RUN_STAMP)
	$(VENV)/bin/kuairec run

test: $(TEST_STAMP)
	$(PY) -m pytest

lint: $(TEST_STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

bench: $(RUN_STAMP)
	$(PY) benchmarks/bench_data.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
