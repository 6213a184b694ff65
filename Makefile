# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
POLICY ?= policies/default.yaml

.PHONY: run test install bench bench-detection train-ner clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip wheel

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/privacy-proxy serve --policy $(POLICY)

test: install
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

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

# Retrain both built-in NER tiers side by side (one core each, under an hour on 2 cores).
train-ner: install
	$(BIN)/python -m sanitizers.ner.train --tier both --data $(DATA)

clean:
	rm -rf $(VENV) build *.egg-info
