# Development targets for r2v-pipeline itself. (A series repository's own
# Makefile pattern is documented in the README.)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
EXAMPLE := manifests/lighthouse/ep01-the-storm.yaml manifests/lighthouse/ep02-the-letter.yaml

.PHONY: install test test-latest lock demo validate plan bench clean

# The pinned set (requirements/constraints.txt) is what CI installs.
$(BIN)/r2v: pyproject.toml requirements/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -c requirements/constraints.txt -e '.[test]'
	@touch $@

install: $(BIN)/r2v

test: install
	$(BIN)/python -m pytest

# The suite on whatever versions pip picks today, in a venv of its own.
test-latest:
	$(PYTHON) -m venv .venv-latest
	.venv-latest/bin/pip install --upgrade -e '.[test]'
	.venv-latest/bin/python -m pytest

# Re-pin after changing pyproject.toml's dependencies (uv resolves for every
# platform and Python the project supports).
lock:
	uvx --from 'uv>=0.5' uv pip compile pyproject.toml --extra test --universal --python-version 3.10 -o requirements/constraints.txt

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
	rm -rf out .r2v .venv-latest .pytest_cache .hypothesis build *.egg-info
