# Two commands for a new user: `make demo` and `make test`. Each installs what it needs
# (Debian packages when missing, a virtual environment with the package) and starts what it uses.

VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: demo test test-cluster lint bench system system-test clean

demo: system $(STAMP)
	@echo "starting the demo (the first start creates the HSM token and keys: a few seconds) …"
	$(VENV)/bin/sharelock demo

AXE := tests/browser/node_modules/axe-core/axe.min.js
# panva's oauth4webapi and openid-client, the partners' clients of
# tests/integration/test_interop_{oauth4webapi,openid_client}.py: one `npm ci` installs both;
# the stamp is the package added last, so a tree installed before it was added installs again.
INTEROP := tests/interop/node_modules/openid-client/package.json

test: system-test $(STAMP) $(AXE) $(INTEROP)
	$(PY) -m pytest $(PYTEST_ARGS)

# Several broker nodes behind HAProxy on Redis Sentinel, then on Redis Cluster, and PostgreSQL,
# under load and faults (tests/cluster/run.py): real processes on this machine, a few minutes.
test-cluster: system-test $(STAMP)
	$(PY) -m tests.cluster.run --redis sentinel
	$(PY) -m tests.cluster.run --redis cluster

$(AXE): tests/browser/package-lock.json
	npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error
	touch $@

$(INTEROP): tests/interop/package-lock.json
	npm ci --prefix tests/interop --no-audit --no-fund --loglevel=error
	touch $@

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/ruff format --check src tests
	$(VENV)/bin/mypy --strict src
# The import contracts of pyproject.toml; --no-cache, so that no cache directory appears in the tree.
	$(VENV)/bin/lint-imports --no-cache --no-logo

bench: system $(STAMP)
	$(PY) tests/bench/bench_envelope.py
	$(PY) tests/bench/bench_flow.py --paced

system:
	@deploy/system-packages.sh

system-test:
	@deploy/system-packages.sh --with-browser

# pip stays quiet; a line before each long step says what the silence is.
$(STAMP): pyproject.toml
	@echo "creating the virtual environment in $(VENV)/ …"
	python3 -m venv $(VENV)
	@echo "updating pip …"
	$(PY) -m pip install --quiet --upgrade pip
	@echo "installing the Python packages (about 2 minutes the first time) …"
	$(PY) -m pip install --quiet -e '.[test,identity]'
	touch $@
	@echo "Python packages installed."

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
