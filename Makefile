# Development targets for r2v-pipeline itself. (A series repository's own
# Makefile pattern is documented in the README.)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
EXAMPLE := manifests/lighthouse/ep01-the-storm.yaml manifests/lighthouse/ep02-the-letter.yaml

.PHONY: install test demo validate plan bench clean

$(BIN)/r2v: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -e '.[test]'
	@touch $@

install: $(BIN)/r2v

test: install
	$(BIN)/python -m pytest

validate: install
	$(BIN)/r2v validate $(EXAMPLE) manifests/seeds/*.yaml

plan: install
	$(BIN)/r2v plan $(EXAMPLE)

demo: install
	$(BIN)/r2v run --simulate $(EXAMPLE)

bench: install
	$(BIN)/python bench/plan_scale.py
	$(BIN)/python bench/sim_load.py
	$(BIN)/python bench/run_makespan.py

clean:
	rm -rf out .r2v .pytest_cache .hypothesis build *.egg-info
