# The two commands: `make run` and `make test`. Everything else is what they stand on.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test install lock lock-check provision provision-tests lint typecheck compat pytest bench bench-e2e clean

# The environment is built from the locks alone: hashes required, the project itself
# without dependencies. A changed lock rebuilds it from nothing, so nothing a previous
# lock installed lingers.
REQ := requirements
LOCKS := $(REQ)/test.lock $(REQ)/runtime.lock $(REQ)/build.lock $(REQ)/tools.lock
LOCK_CHECK := $(PYTHON) -P sockethub/devstack/lock_check.py
UV_COMPILE = $(BIN)/uv pip compile -q --generate-hashes --universal --python-version 3.11 \
	--custom-compile-command "make lock" $(LOCK_ARGS)

$(STAMP): pyproject.toml $(LOCKS) $(REQ)/inputs.sha256
	@$(LOCK_CHECK)
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --require-hashes -r $(REQ)/build.lock -r $(REQ)/test.lock
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	@touch $(STAMP)

install: $(STAMP)

lock-check:
	@$(LOCK_CHECK)

# Re-resolve after editing pyproject.toml, keeping every pin that still fits.
# Upgrades: `make lock LOCK_ARGS="--upgrade-package NAME"` (or "--upgrade" for all).
lock:
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --require-hashes -r $(REQ)/tools.lock
	$(UV_COMPILE) pyproject.toml --extra test -o $(REQ)/test.lock
	$(UV_COMPILE) pyproject.toml -c $(REQ)/test.lock -o $(REQ)/runtime.lock
	$(UV_COMPILE) $(REQ)/build.in -o $(REQ)/build.lock
	$(UV_COMPILE) $(REQ)/tools.in -o $(REQ)/tools.lock
	$(LOCK_CHECK) --write

provision: install
	$(BIN)/sockethub provision

provision-tests: install
	$(BIN)/sockethub provision --tests

run: provision
	$(BIN)/sockethub dev

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

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
