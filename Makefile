# The two commands of the README, and their parts. Each target sets up what it needs first.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup bench test lint

setup:
	bash scripts/setup.sh

# the main job: asv suite on this machine's default backend, asv's site, then the HTML report
bench: setup
	bash scripts/bench.sh

test: setup
	$(PY) -m pytest -q

lint: setup
	$(PY) -m ruff check kernels suite reports tests
	$(PY) -m ruff format --check kernels suite reports tests
