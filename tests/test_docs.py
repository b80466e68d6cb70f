"""README.md and docs/*.md as a tested contract (tests/docskit.py says how): the documents are well
formed, every command they show is accounted for, no history outside the changelog, and every README.md
command runs in a fresh copy (tests/test_docs_figures.py holds their figures to metrics/). A document's
other halves run in tests/test_docs_readme_own.py and tests/test_docs_guides.py, on other cores."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.docskit import (
    AFTER,
    DOCS,
    NEEDS,
    OWN_COPY_SECTIONS,
    PLACEHOLDER,
    PLACEHOLDERS,
    README,
    REPRO_TRAIN,
    SELF,
    all_blocks,
    code_blocks,
    first_line,
    needs,
    readme_blocks,
    run_documents,
    uncommented,
)

# --- The documents are well-formed: every block says what it is, every command is accounted for -----


def test_every_code_block_says_what_it_is() -> None:
    untagged = [b.where() for b in all_blocks() if not b.lang]
    assert not untagged, (f"code blocks without a language (```sh for commands that a test runs, ```text "
                          f"for the rest): {untagged}")


def test_every_placeholder_and_check_still_matches_a_documented_command() -> None:
    commands = [c for b in all_blocks() if b.lang == "sh" for c in b.commands]
    keys = {uncommented(first_line(c)) for c in commands}
    text = "\n".join(commands)
    stale = [k for k in [SELF, *AFTER] if k not in keys]
    stale += [p for p in PLACEHOLDERS if p not in text]
    assert not stale, f"entries that match no command in README.md or docs/ any more: {stale}"


def test_every_placeholder_is_one_the_test_fills() -> None:
    unknown = sorted({f"{b.where()}: {p}" for b in all_blocks() if b.lang == "sh" for c in b.commands
                      if not NEEDS.search(c) for p in PLACEHOLDER.findall(c) if p not in PLACEHOLDERS})
    assert not unknown, f"placeholders the docs test does not fill (PLACEHOLDERS): {unknown}"


def test_the_skips_are_only_what_needs_gpus_machines_a_cluster_or_a_bucket() -> None:
    skipped = [c for b in all_blocks() if b.lang == "sh" for c in b.commands if NEEDS.search(c)]
    assert skipped and all(re.search(r"GPU|machines|bucket|cluster|network", needs(c)) for c in skipped)
    # the matcher reads the comment only: the same words in a command's arguments do not skip it
    assert not NEEDS.search("dvc exp run -S train=gpu") and NEEDS.search("torchrun x   # needs 8 GPUs")


# A command shown in the prose of README.md or docs/ (an inline `dvc ...`, `codex ...`, `make ...`) is one
# their ```sh blocks run. docs/speedrun.md is the speedrun's log: its prose says what was run then. A
# benchmark's table (between `<!-- python benchmarks/... --markdown -->` and `<!-- end -->`) names the
# run that measured it, which tests/test_docs_figures.py holds it to.
PROSE_COMMAND = re.compile(r"`((?:dvc|codex|make|python|torchrun|pip|git) [^`]*)`")
PROSE_DOCS = [d for d in DOCS if d.name != "speedrun.md"]
BENCHMARK_TABLE = re.compile(r"<!-- python benchmarks/.*?<!-- end -->", re.S)


def test_every_command_the_docs_show_in_prose_is_in_a_block() -> None:
    ran = "\n".join(c for doc in DOCS for b in code_blocks(doc) if b.lang == "sh" for c in b.commands)
    loose = []
    for doc in PROSE_DOCS:
        prose = re.sub(r"^(\s*)```.*?^\1```", "", doc.read_text(encoding="utf-8"), flags=re.S | re.M)
        prose = BENCHMARK_TABLE.sub("", prose)
        loose += [f"{doc.relative_to(ROOT)}: {m.group(1)}" for m in PROSE_COMMAND.finditer(prose)
                  if m.group(1) not in ran]
    assert not loose, f"commands shown in prose that no ```sh block runs: {loose}"


# README.md, docs/ (but the speedrun's log), code, conf and tests speak to users, not of the project's past:
# a figure names what it was measured on and the benchmark that reproduces it, never a speedrun row, an
# issue or a session. CHANGELOG.md and docs/speedrun.md are where history goes.
MONTHS = "January|February|March|April|May|June|July|August|September|October|November|December"
HISTORY = re.compile(r"\b(?:rows? \d+|issues? #?\d+|(?:this|last|earlier|previous) session|today|lately"
                     r"|this \d+-core machine|as before|the issue(?:'s)?|where this page was written"
                     r"|before\b[^.:;|]*\bnow"  # "before ... now", within one clause
                     r"|\d{4}-\d\d-\d\d"  # a date
                     rf"|(?:{MONTHS}) \d{{4}})\b", re.I)
HISTORY_FREE = [*PROSE_DOCS, ROOT / "Makefile",
                *(f for folder in ("codex_ml", "stages", "conf", "benchmarks", "tests")
                  for f in sorted((ROOT / folder).rglob("*")) if f.suffix in (".py", ".yaml"))]


def test_no_history_outside_the_changelog_and_the_speedrun_log() -> None:
    assert HISTORY.search("speedrun row 15") and not HISTORY.search("rows of the table")
    for said in ("before the fix it took 3 s, now 1 s", "Measured 2026-12-02 on", "in March 2026",
                 "as before", "the issue's experiment", "none was available where this page was written"):
        assert HISTORY.search(said), said
    for fine in ("before training: it stops now", "Before training starts the stage says", "sizes 2,048"):
        assert not HISTORY.search(fine), fine
    found = [f"{f.relative_to(ROOT)}:{n}: {m.group(0)}" for f in HISTORY_FREE if f != Path(__file__)
             for n, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1)
             if (m := HISTORY.search(line))]
    assert not found, f"history words (they belong in CHANGELOG.md or docs/speedrun.md): {found}"


# --- Every documented command, in order, in a fresh copy -------------------------------------------------


def test_the_readme_sections_run_in_their_own_copy_exist() -> None:
    sections = {b.section for b in code_blocks(README) if b.lang == "sh"}
    assert set(OWN_COPY_SECTIONS) <= sections, f"README.md has no ```sh block under {OWN_COPY_SECTIONS}"


@pytest.mark.slow
def test_every_readme_command_runs_in_a_fresh_copy(tmp_path: Path) -> None:
    """README.md's commands but its OWN_COPY_SECTIONS', which tests/test_docs_readme_own.py runs;
    docs/*.md's run in tests/test_docs_guides.py."""
    run_documents(tmp_path, readme_blocks(own_copy=False), repro_train=REPRO_TRAIN)
