# Two commands for a fresh machine:
#   make run    set up a virtualenv and run the daemon on the shipped sample (http://localhost:9108/metrics)
#   make test   set up a virtualenv, install the test peers (prometheus, redis-server) and run every test
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
APT_PKGS = prometheus redis-server clang

.PHONY: run test setup setup-test peers lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

setup: $(BIN)/python
	$(BIN)/pip install -q -e .

setup-test: $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'

# Debian packages the tests use as real peers (needs root or sudo once).
peers:
	@missing=""; for c in prometheus promtool redis-server; do command -v $$c >/dev/null || missing=1; done; \
	if [ -n "$$missing" ]; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(APT_PKGS); \
	fi

run: setup
	$(BIN)/cloudtrail-sqs-exporter run

test: setup-test peers
	$(BIN)/ruff check exporter tests bench
	$(BIN)/python -m pytest -q -p no:cacheprovider

lint: setup-test
	$(BIN)/ruff check exporter tests bench
	$(BIN)/ruff format --check exporter

bench: setup
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) state build dist *.egg-info
