# Confide: `make run` serves the chat, `make test` runs every test.
# Both install what they need on a fresh machine (see README.md).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8080
# Debian packages the tests drive for real (installed when missing and root).
DEBS   := chromium coturn redis-server iptables iproute2 shellcheck zbar-tools librsvg2-bin nginx-light
# And the benchmarks' load client (Node.js and npm come with the machine).
BENCH_DEBS := wrk

.PHONY: run run-turn test test-js test-py lint format bench clean system-packages natlab

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# The server alone: aiohttp, segno, cryptography, orjson (and uvloop).
$(VENV)/.run-installed: setup.cfg pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

# Everything the tests, linters and benchmarks use (aiortc, playwright, ...).
$(VENV)/.test-installed: setup.cfg pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[peer,test,dev]'
	touch $@ $(VENV)/.run-installed

run: $(VENV)/.run-installed
	$(BIN)/confide serve --host $(HOST) --port $(PORT)

run-turn: $(VENV)/.run-installed system-packages
	bash turn/run-with-server.sh $(HOST) $(PORT)

system-packages:
	@missing=""; for p in $(DEBS) $(EXTRA_DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else \
	    echo "missing Debian packages:$$missing (run as root to install them; tests that need them skip)"; \
	  fi; \
	fi

test: system-packages $(VENV)/.test-installed test-js test-py

test-js:
	node --test tests/js/

test-py: $(VENV)/.test-installed
	$(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

lint: $(VENV)/.test-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(VENV)/.test-installed
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# The NAT lab's full matrix (root: network namespaces, iptables, coturn); the heat map
# needs matplotlib, the [lab] extra.
$(VENV)/.lab-installed: setup.cfg pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[peer,test,dev,lab]'
	touch $@ $(VENV)/.test-installed $(VENV)/.run-installed

natlab: system-packages $(VENV)/.lab-installed
	$(BIN)/python -m natlab

bench: $(VENV)/.test-installed
	$(MAKE) system-packages EXTRA_DEBS="$(BENCH_DEBS)"
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) build *.egg-info bench/results
