# Two commands for a fresh machine:
#   make run    set up a virtualenv and run the daemon on the shipped sample (http://localhost:10355/metrics)
#   make test   set up a virtualenv, install the test peers (prometheus, redis-server) and run every test
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
APT_PKGS = prometheus redis-server libssl-dev clang

.PHONY: run test setup setup-test peers lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# Stamp files: install again only when what the install depends on changed. The install is editable,
# so edits to exporter/*.py need none; the C accelerator, the metadata and the pins do.
INSTALL_DEPS = pyproject.toml setup.py constraints.txt exporter/_native.c

$(VENV)/.installed: $(INSTALL_DEPS) | $(BIN)/python
	$(BIN)/pip install -q -e .
	@touch $@

$(VENV)/.installed-test: $(INSTALL_DEPS) | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	@touch $@ $(VENV)/.installed

setup: $(VENV)/.installed

setup-test: $(VENV)/.installed-test

# Debian packages the tests use as real peers (needs root or sudo once).
peers:
	@missing=""; for c in prometheus promtool redis-server clang; do command -v $$c >/dev/null || missing=1; done; \
	[ -e /usr/include/openssl/hmac.h ] || missing=1; \
	if [ -n "$$missing" ]; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(APT_PKGS); \
	fi

run: setup
	$(BIN)/cloudtrail-sqs-exporter run

test: peers setup-test
	$(BIN)/ruff check exporter tests bench
	$(BIN)/python -m pytest -q -p no:cacheprovider

lint: setup-test
	$(BIN)/ruff check exporter tests bench
	$(BIN)/ruff format --check exporter

bench: setup
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) state build dist *.egg-info
