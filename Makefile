# The two commands of the README, and their parts. Each target sets up what it needs first.
VENV ?= .venv
PY := $(VENV)/bin/python
CODE := hdbench kernels results suite reports tests

.PHONY: setup bench test lint wheel-check

setup:
	bash scripts/setup.sh

# the main job: asv suite on this machine's default backend, asv's site, then the HTML report
bench: setup
	bash scripts/bench.sh

test: setup
	$(PY) -m pytest -q

# ruff's lint and format, and vermin: no name or syntax newer than requires-python (3.10)
lint: setup
	$(PY) -m ruff check $(CODE)
	$(PY) -m ruff format --check $(CODE)
	$(VENV)/bin/vermin -q -t=3.10- --violations --no-tips --eval-annotations $(CODE)

# the built wheel on its own: installed into a fresh venv (the report's extra, no torch), it
# builds a report from a small results fixture
wheel-check: setup
	bash scripts/check_wheel.sh
