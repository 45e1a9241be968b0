# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
PYTEST_ARGS ?=

.PHONY: run test deps stop lint unit bench

deps:
	@scripts/install-deps

run: deps
	@scripts/run

stop:
	@scripts/stop

lint: deps
	$(PYTHON) -m ruff check src tests bench
	$(PYTHON) -m mypy
	lint-imports

unit: deps
	$(PYTHON) -m pytest tests/unit -q

# pytest exits 5 when it ran no test: that fails the run like any other non-zero code.
test: deps
	$(PYTHON) -m pytest -q -ra $(PYTEST_ARGS)

bench: deps
	$(PYTHON) -m bench.router_overhead
	$(PYTHON) -m bench.cold_start
	$(PYTHON) -m bench.density
