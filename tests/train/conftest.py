"""Fixtures for the train stage's tests: real token data in the tokenize stage's format
(tests/trainkit.py's `write_token_data`, on real stdlib modules), and a working folder per test."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from codex_ml.params import parse_params
from tests.conftest import merge
from tests.trainkit import MICRO, write_token_data


@pytest.fixture(scope="session")
def token_data(tmp_path_factory: pytest.TempPathFactory, stdlib_sample: Path) -> Path:
    """A folder holding models/tokenizer and data/tokens made from the stdlib sample (read-only)."""
    files = sorted(stdlib_sample.rglob("*.py"))
    texts = [f.read_text(encoding="utf-8") for f in files]
    docs = {"train": [t for i, t in enumerate(texts) if i % 8], "val": texts[::8], "test": texts[::8]}
    out = tmp_path_factory.mktemp("token_data")
    write_token_data(docs, out)
    return out


@pytest.fixture
def workdir(tmp_path: Path, token_data: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Path]:
    """A stage working folder (cwd) with the token data and a params.yaml of MICRO + overrides."""

    def make(overrides: dict | None = None, name: str = "work") -> Path:
        root = tmp_path / name
        shutil.copytree(token_data, root)
        params = merge(MICRO, overrides or {})
        parse_params(params)  # fail early on a typo in a test
        (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        monkeypatch.chdir(root)
        return root

    return make
