# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
# On a Debian Python, scripts/install-deps puts Cove's packages in .venv (found first).
export PATH := $(CURDIR)/.venv/bin:$(PATH)
PYTEST_ARGS ?=

.PHONY: run test deps stop lint unit bench k8s-build k8s-node-build k8s-up k8s-down

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
# The Kubernetes test binaries are built (or found in the cache) first: a first build takes
# longer than any one test may.
test: deps k8s-build k8s-node-build
	$(PYTHON) -m pytest -q -ra $(PYTEST_ARGS)

bench: deps
	$(PYTHON) -m bench.router_overhead
	$(PYTHON) -m bench.cold_start
	$(PYTHON) -m bench.density

# A real Kubernetes control plane (etcd, apiserver, controller-manager, scheduler, kwok)
# built from Go modules; `eval "$$(scripts/k8s-testenv env)"` points kubectl at it.
k8s-build:
	@scripts/k8s-testenv build

# The tests' real node (kubelet, kube-proxy, kube-router, Traefik, CoreDNS, pause), built
# from Go modules once and cached like the control plane.
k8s-node-build:
	@scripts/k8s-node build

k8s-up:
	@scripts/k8s-testenv up

k8s-down:
	@scripts/k8s-testenv down
