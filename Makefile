# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
POLICY ?= policies/default.yaml

.PHONY: run test test-deps install bench bench-detection bench-load train-ner clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip wheel

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/privacy-proxy serve --policy $(POLICY)

test: install test-deps
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# System packages the tests drive: a real redis-server (Debian package) for the Redis vault tests, and
# headless Chromium with its driver (Debian chromium, chromium-driver) for the audit dashboard test.
# Installed quietly when missing; without apt-get (or root/sudo) those tests are skipped, saying why.
test-deps:
	@command -v redis-server >/dev/null 2>&1 || { \
	  if ! command -v apt-get >/dev/null 2>&1; then \
	    echo "test-deps: no apt-get here: install redis-server yourself, or the Redis vault tests are skipped"; \
	  else \
	    if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO="sudo -n"; fi; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    $$SUDO apt-get install -y -qq --no-install-recommends redis-server >/dev/null 2>&1 \
	    || { $$SUDO apt-get update -qq >/dev/null 2>&1 \
	         && $$SUDO apt-get install -y -qq --no-install-recommends redis-server >/dev/null 2>&1; } \
	    || echo "test-deps: apt-get could not install redis-server: the Redis vault tests are skipped"; \
	  fi; \
	}
	@{ command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; } || { \
	  if ! command -v apt-get >/dev/null 2>&1; then \
	    echo "test-deps: no apt-get here: install chromium and chromium-driver yourself, or the dashboard test is skipped"; \
	  else \
	    if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO="sudo -n"; fi; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    $$SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null 2>&1 \
	    || { $$SUDO apt-get update -qq >/dev/null 2>&1 \
	         && $$SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null 2>&1; } \
	    || echo "test-deps: apt-get could not install chromium: the dashboard browser test is skipped"; \
	  fi; \
	}

bench: install
	$(BIN)/python bench/proxy_overhead.py

# Detection quality and speed against Presidio (DATA defaults to ../shared/data), pattern-tier speed,
# long documents and chat turns, start-up time and memory.
DATA ?= ../shared/data
bench-detection: install
	$(BIN)/python bench/detection.py --data $(DATA) --ner builtin builtin:fast none
	$(BIN)/python bench/patterns.py --data $(DATA)
	$(BIN)/python bench/long_input.py --data $(DATA) --json bench/results/long_input.json
	$(BIN)/python bench/startup.py --json bench/results/startup.json

# Load on loopback: 1,000 concurrent streams, 1,000 concurrent non-stream requests (each with its own
# private values), then 300 streams three times against one proxy (what it keeps between loads).
# JSON in bench/results/load.json; exits non-zero only if a request mixed, leaked or failed uncleanly.
bench-load: install
	$(BIN)/python bench/load.py --requests 1000 --stream
	$(BIN)/python bench/load.py --requests 1000 --no-stream
	$(BIN)/python bench/load.py --requests 300 --rounds 3 --stream --label stream_300_3_rounds

# Retrain both built-in NER tiers side by side (one core each, under an hour on 2 cores).
train-ner: install
	$(BIN)/python -m sanitizers.ner.train --tier both --data $(DATA)

clean:
	rm -rf $(VENV) build *.egg-info
