"""The files one stage hands to another (codex_ml/handoffs.py): written and read through one model, so
tokenize's meta.json reads back to the same bytes, and a stale or foreign file is one error, the same
wherever it is read, naming the file, what does not fit and how to make it again."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from codex_ml.eval.inputs import load_token_split
from codex_ml.handoffs import META_FILE, MODEL_RECORD, BaseRecord, ModelRecord, TokenMeta
from codex_ml.runtime import StageError
from codex_ml.shards import write_prepared
from codex_ml.training.inputs import load_token_data
from tests.evalkit import write_tokens
from tests.tokenizekit import sample_documents, split_sample


@pytest.fixture
def tokens(tmp_path: Path, stdlib_sample: Path) -> Path:
    """data/tokens of a few real modules, as eval's byte-level test tokenizer encodes them."""
    prepared = tmp_path / "prepared"
    for split, docs in split_sample(sample_documents(stdlib_sample)[:12]).items():
        write_prepared(prepared, split, ({"path": p, "text": t} for p, t in docs))
    write_tokens(prepared, tmp_path / "tokens")
    return tmp_path / "tokens"


def readers(tokens: Path) -> list:
    """Every way the pipeline's code reads meta.json: train's token data, eval's documents."""
    return [lambda: load_token_data(tokens), lambda: load_token_split(tokens, "val")]


def test_meta_json_reads_back_to_its_bytes(tokens: Path) -> None:
    written = (tokens / META_FILE).read_bytes()
    meta = TokenMeta.load(tokens)
    assert meta.splits["val"].tokens == sum(s.tokens for s in meta.splits["val"].shards) > 0
    meta.save(tokens)
    assert (tokens / META_FILE).read_bytes() == written
    assert "base_model" not in json.loads(written)  # a trained tokenizer's ids: no base to record


@pytest.mark.parametrize(("damage", "problem"), [
    # token files from before sharding: a split was one file, with no shard list
    (lambda m: m["splits"]["train"].pop("shards"), "splits.train.shards: field required"),
    (lambda m: m.pop("eos_id"), "eos_id: field required"),
    (lambda m: m.update(dtype="int8"), "dtype: input should be 'uint16' or 'uint32'"),
    (lambda m: m.update(vocab_size="264"), "vocab_size: input should be a valid integer"),
    (lambda m: m.update(eos_id=999), "eos_id 999 is not below vocab_size 264"),
    (lambda m: m["splits"]["val"].update(tokens=1), "splits.val: its shards hold"),
    (lambda m: m["splits"].update(dev=m["splits"]["val"]), "'splits' has dev; expected names of train, val"),
    (lambda m: m.update(tokenizer="hf"), "tokenizer: extra inputs are not permitted"),
])
def test_a_stale_or_foreign_meta_json_is_one_error_wherever_it_is_read(
        tokens: Path, damage: Callable[[dict], object], problem: str) -> None:
    raw = json.loads((tokens / META_FILE).read_text())
    damage(raw)
    (tokens / META_FILE).write_text(json.dumps(raw))
    for read in readers(tokens):
        with pytest.raises(StageError) as err:
            read()
        message = str(err.value)
        stale = f"{tokens / META_FILE}: not the meta.json this version of codex-ml writes ("
        assert message.startswith(stale)
        assert problem in message and message.endswith("run the tokenize stage: `dvc repro -f tokenize`")
        assert "\n" not in message


def test_a_meta_json_that_is_not_json_or_not_there_names_the_file(tokens: Path) -> None:
    (tokens / META_FILE).write_text("[1, 2")
    for read in readers(tokens):
        with pytest.raises(StageError, match=re.escape(f"{tokens / META_FILE}: not the meta.json this")):
            read()
    (tokens / META_FILE).unlink()
    for read in readers(tokens):
        with pytest.raises(StageError, match=re.escape(f"{tokens / META_FILE}: not found (run the tokenize")):
            read()


def test_a_model_record_reads_back_and_a_foreign_one_is_one_error(tmp_path: Path) -> None:
    assert ModelRecord.load(tmp_path) is None  # a model trained from scratch has none
    base = BaseRecord(pretrained="org/name", revision=None, tokenizer_sha256="a" * 64, sha256="b" * 64)
    ModelRecord(base_model=base).save(tmp_path)
    assert ModelRecord.load(tmp_path) == ModelRecord(base_model=base)
    assert json.loads((tmp_path / MODEL_RECORD).read_text()) == {"base_model": base.model_dump()}
    (tmp_path / MODEL_RECORD).write_text(json.dumps({"base_model": {"pretrained": "org/name"}}))
    foreign = (f"{tmp_path / MODEL_RECORD}: not the codex_model.json this version of codex-ml writes "
               "(base_model.revision: field required; base_model.tokenizer_sha256: field required; "
               "base_model.sha256: field required)")
    with pytest.raises(StageError, match=re.escape(foreign)):
        ModelRecord.load(tmp_path)
