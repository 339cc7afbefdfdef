# The two commands: `make run` and `make test`. Everything else is what they stand on.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test install provision provision-tests lint typecheck compat pytest bench bench-e2e clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	@touch $(STAMP)

install: $(STAMP)

provision: install
	$(BIN)/sockethub provision

provision-tests: install
	$(BIN)/sockethub provision --tests

run: provision
	$(BIN)/sockethub dev

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

compat: install
	$(BIN)/python -m schemas.compat

pytest: provision-tests
	$(BIN)/pytest -q -p no:cacheprovider $(PYTEST_ARGS)

test: lint typecheck compat pytest

bench: install
	$(BIN)/python benchmarks/codec_bench.py

# The benchmark's Node load clients; reinstalled when the lock file changes.
BENCH_JS := benchmarks/js
BENCH_JS_STAMP := $(BENCH_JS)/node_modules/.installed

$(BENCH_JS_STAMP): $(BENCH_JS)/package-lock.json
	npm ci --no-audit --no-fund --prefix $(BENCH_JS)
	@touch $(BENCH_JS_STAMP)

bench-e2e: install $(BENCH_JS_STAMP)
	$(BIN)/python benchmarks/e2e_bench.py

clean:
	rm -rf .sockethub .mypy_cache .ruff_cache .pytest_cache
