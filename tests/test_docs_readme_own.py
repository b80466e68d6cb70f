"""README.md's sections that start from a fresh clone of their own ("Your own corpus", "Fine-tune your
own model": tests/test_docs.py's OWN_COPY_SECTIONS): every shell command they show runs, as written, in
a fresh copy, in the order shown (how, and what the test changes: tests/test_docs.py). A file of its
own so that `make test` runs it beside the rest of README.md's commands on another core."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.docskit import readme_blocks, run_documents


@pytest.mark.slow
def test_every_command_of_the_readme_sections_with_their_own_copy_runs(tmp_path: Path) -> None:
    run_documents(tmp_path, readme_blocks(own_copy=True))
