# The README's two commands: `make repro` (the whole pipeline) and `make test` (the test suite).
# Each creates .venv when missing and installs the project, pinned by requirements.lock.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: install repro test lint typecheck pytest bench lock clean-venv params diff

install: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c requirements.lock -e '.[dev]'
	touch $(STAMP)

repro: $(STAMP)
	$(BIN)/dvc repro
	$(BIN)/dvc metrics show

# params.yaml is composed from conf/ (Hydra). `dvc exp run` recomposes it itself; `dvc repro` does not,
# so after editing conf/ run this (a test fails while params.yaml and conf/ disagree).
params: $(STAMP)
	$(BIN)/python -c "import os; from dvc.utils.hydra import compose_and_dump; \
	  compose_and_dump('params.yaml', os.path.abspath('conf'), None, 'config', os.getcwd(), [])"

# Metrics and params against a revision, as markdown for code review: make diff [REV=main]
REV ?= main
diff: $(STAMP)
	@echo "### Metrics: $(REV) -> workspace"; echo
	@$(BIN)/dvc metrics diff --md --all $(REV)
	@echo; echo "### Params: $(REV) -> workspace"; echo
	@$(BIN)/dvc params diff --md $(REV)

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/python -m pytest

test: lint typecheck pytest

bench: $(STAMP)
	for b in benchmarks/bench_*.py; do $(BIN)/python $$b || exit 1; done

# Regenerate the lock from pyproject's direct pins (run after changing a dependency).
lock:
	rm -rf .lockenv && $(PYTHON) -m venv .lockenv
	.lockenv/bin/python -m pip install -q --upgrade pip
	.lockenv/bin/python -m pip install -q -e '.[dev]'
	.lockenv/bin/python -m pip freeze --exclude-editable | sort > requirements.lock
	rm -rf .lockenv

clean-venv:
	rm -rf $(VENV)
