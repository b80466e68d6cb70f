# The README's two commands: `make repro` (the whole pipeline) and `make test` (the test suite).
# Each creates .venv when missing and installs the project, pinned by requirements.lock.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# The install stamp is named by the content of the two files that decide the install, not their
# mtimes: a fresh clone or a `git checkout` that leaves them unchanged does not reinstall.
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml requirements.lock | sha256sum | cut -c1-16)

# The page template of `dvc plots show` / `dvc plots diff`, chart libraries inline so it draws offline
# (.dvc/config plots.html_template names it; codex_ml/report/plots_template.py).
PLOTS_TEMPLATE := $(VENV)/share/codex-ml/dvc-plots.html

export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: install system-deps repro test lint typecheck pytest bench lock clean-venv params params-doc diff

install: $(STAMP)

$(STAMP):
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c requirements.lock -e '.[dev]'
	$(BIN)/python -m codex_ml.report.plots_template $(PLOTS_TEMPLATE)
	rm -f $(VENV)/.installed*
	touch $(STAMP)

# Debian packages the tests run for real, installed once where missing (as root, or through sudo):
# headless Chromium (the report test) and a single-node Slurm with munge (tests/test_slurm.py, which
# starts and stops its own daemons on loopback; nothing here enables a system service).
SYSTEM_DEPS := chromium:chromium slurmctld:slurmctld slurmd:slurmd sbatch:slurm-client munged:munge
system-deps:
	@missing=""; for dep in $(SYSTEM_DEPS); do cmd=$${dep%%:*}; \
	  command -v $$cmd >/dev/null 2>&1 || [ -x /usr/sbin/$$cmd ] || missing="$$missing $${dep#*:}"; done; \
	if [ -n "$$missing" ]; then \
	  sudo=""; if [ "$$(id -u)" -ne 0 ]; then sudo="sudo"; fi; \
	  echo "apt-get install$$missing"; \
	  $$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq $$missing >/dev/null; \
	fi

# The whole pipeline, then a short summary (every number: dvc metrics show; the page: reports/).
repro: $(STAMP)
	@start=$$(date +%s); $(BIN)/dvc repro && $(BIN)/codex summary --elapsed $$(( $$(date +%s) - start ))

# params.yaml is composed from conf/ (Hydra). `dvc exp run` recomposes it itself; `dvc repro` does not,
# so after editing conf/ run this (a test fails while params.yaml and conf/ disagree).
params: $(STAMP)
	$(BIN)/python -c "import os; from dvc.utils.hydra import compose_and_dump; \
	  compose_and_dump('params.yaml', os.path.abspath('conf'), None, 'config', os.getcwd(), [])"

# docs/params.md from the params schema (codex_ml/params/); a test fails while it is stale.
params-doc: $(STAMP)
	$(BIN)/python -m codex_ml.params.doc > docs/params.md

# Metrics and params against a revision, as markdown for code review: make diff [REV=main]. The paired
# comparison on the documents both runs scored comes first (codex compare; one line when it cannot pair
# them: different held-out documents, or no eval rows yet), DVC's raw diffs after it.
REV ?= main
diff: $(STAMP)
	@echo "### Paired on the same documents: $(REV) (A) -> workspace (B)"; echo
	@$(BIN)/codex compare --md $(REV) workspace 2>&1 || true
	@echo; echo "### Metrics: $(REV) -> workspace"; echo
	@$(BIN)/dvc metrics diff --md --all $(REV)
	@echo; echo "### Params: $(REV) -> workspace"; echo
	@$(BIN)/dvc params diff --md $(REV)

lint: $(STAMP)
	$(BIN)/ruff check codex_ml stages benchmarks tests
	$(BIN)/lint-imports --no-cache

typecheck: $(STAMP)
	$(BIN)/mypy

# One test file per worker at a time, the longest files first (tests/conftest.py), one worker more than
# the cores: the end-to-end tests spend part of their time waiting (DVC locks, the queue's polling, disk),
# and stage subprocesses run one torch thread each (tests/conftest.py). docs/reproducibility.md, "The
# test suite", has its time on 2 cores.
PYTEST_WORKERS ?= $(shell echo $$(( $$(nproc) + 1 )))
pytest: $(STAMP) system-deps
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder

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
