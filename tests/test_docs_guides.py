"""docs/*.md as a tested contract: every shell command the guides show runs, as written, in a fresh
copy, in the order shown (how, and what the test changes: tests/test_docs.py). A file of its own so
that `make test` runs it beside README.md's half on another core."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.docskit import DOCS, README, code_blocks, run_documents


@pytest.mark.slow
def test_every_guide_command_runs_in_a_fresh_copy(tmp_path: Path) -> None:
    # The guides repeat two of the README's experiments; the README's test runs those.
    run_documents(tmp_path, [b for doc in DOCS if doc != README for b in code_blocks(doc)],
                  run_elsewhere=(README,))
