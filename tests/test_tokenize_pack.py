"""The tokenize stage's outputs on real prepared stdlib data: token files laid out exactly as
docs/pipeline.md says, metrics, byte-identical reruns, and one clear error for bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from codex_ml.runtime import StageError
from codex_ml.tokenization import load_tokenizer
from codex_ml.tokenization.pack import Document, pack_ids, pack_split, read_prepared, token_dtype
from codex_ml.tokenization.stage import tokenize
from tests.tokenizekit import (
    SPLITS,
    folder_bytes,
    sample_documents,
    small_params,
    split_sample,
    write_prepared,
)

META_KEYS = {"dtype", "vocab_size", "backend", "pad_id", "bos_id", "eos_id", "unk_id", "splits"}
SPLIT_KEYS = {"file", "tokens", "bytes", "documents", "doc_offsets", "doc_bytes", "doc_paths"}


def run_stage(prepared: Path, out: Path, backend: str) -> dict[str, Any]:
    return tokenize(small_params(backend), prepared, out / "models" / "tokenizer", out / "data" / "tokens",
                    out / "metrics" / "tokenize.json")


@pytest.fixture(scope="module")
def prepared(stdlib_sample: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_prepared(tmp_path_factory.mktemp("prepared"), split_sample(sample_documents(stdlib_sample)))


@pytest.fixture(scope="module", params=["sentencepiece", "hf-bpe"])
def staged(request: pytest.FixtureRequest, prepared: Path,
           tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp(f"stage-{request.param}")
    return request.param, out, run_stage(prepared, out, request.param)


def test_token_files_match_meta_and_the_documents(staged: tuple[str, Path, dict[str, Any]],
                                                  prepared: Path) -> None:
    backend, out, _ = staged
    tokens_dir = out / "data" / "tokens"
    meta = json.loads((tokens_dir / "meta.json").read_text())
    assert set(meta) == META_KEYS and set(meta["splits"]) == set(SPLITS)
    assert meta["backend"] == backend and meta["dtype"] == "uint16" and meta["vocab_size"] == 600
    assert (meta["unk_id"], meta["bos_id"], meta["eos_id"], meta["pad_id"]) == (0, 1, 2, 3)
    tok = load_tokenizer(out / "models" / "tokenizer")
    assert tok.vocab_size == meta["vocab_size"]
    for split in SPLITS:
        info = meta["splits"][split]
        docs = read_prepared(prepared / f"{split}.jsonl")
        assert set(info) == SPLIT_KEYS and info["file"] == f"{split}.bin"
        assert info["documents"] == len(docs) > 0
        assert info["doc_paths"] == [d.path for d in docs]  # prepared order
        assert info["doc_bytes"] == [len(d.text.encode()) for d in docs]
        assert info["bytes"] == sum(info["doc_bytes"])
        path = tokens_dir / info["file"]
        assert path.stat().st_size == info["tokens"] * 2
        stream = np.memmap(path, dtype=meta["dtype"], mode="r")  # exactly as docs/pipeline.md reads it
        offsets = info["doc_offsets"]
        assert len(offsets) == info["documents"] + 1 and offsets[0] == 0 and offsets[-1] == info["tokens"]
        expected = tok.encode_batch([d.text for d in docs], 2)
        for i, doc in enumerate(docs):
            doc_ids = stream[offsets[i]:offsets[i + 1] - 1].tolist()
            assert doc_ids == expected[i], doc.path
            assert stream[offsets[i + 1] - 1] == meta["eos_id"]
            assert tok.decode(doc_ids) == doc.text
        assert np.count_nonzero(stream == meta["eos_id"]) == info["documents"]  # EOS only between docs
        assert np.count_nonzero(stream == meta["bos_id"]) == 0  # no BOS


def test_metrics(staged: tuple[str, Path, dict[str, Any]]) -> None:
    backend, out, returned = staged
    m = json.loads((out / "metrics" / "tokenize.json").read_text())
    assert m == returned
    meta = json.loads((out / "data" / "tokens" / "meta.json").read_text())
    assert m["backend"] == backend and m["vocab_size"] == 600 and m["dtype"] == "uint16"
    for split in SPLITS:
        info = meta["splits"][split]
        assert m["tokens"][split] == info["tokens"] - info["documents"]  # EOS is not text
        assert m["bytes"][split] == info["bytes"]
        assert m["tokens_per_byte"][split] == pytest.approx(m["tokens"][split] / info["bytes"], rel=1e-5)
        assert m["bytes_per_token"][split] == pytest.approx(info["bytes"] / m["tokens"][split], rel=1e-5)
        assert 0 <= m["byte_fallback_rate"][split] < 0.05
    assert 1.5 < m["bytes_per_token"]["train"] < 4  # a 600-token vocabulary still compresses code
    assert m["round_trip_exact"] == 1.0 and m["autotokenizer_match"] == 1.0
    assert m["checked_documents"] == meta["splits"]["val"]["documents"]


def test_stage_is_byte_identical_when_rerun(staged: tuple[str, Path, dict[str, Any]], prepared: Path,
                                            tmp_path: Path) -> None:
    backend, out, _ = staged
    run_stage(prepared, tmp_path, backend)
    assert folder_bytes(tmp_path) == folder_bytes(out)


def test_chunked_encoding_changes_nothing(staged: tuple[str, Path, dict[str, Any]], prepared: Path,
                                          tmp_path: Path) -> None:
    _, out, _ = staged
    tok = load_tokenizer(out / "models" / "tokenizer")
    docs = read_prepared(prepared / "train.jsonl")
    one = pack_split(tok, docs, tmp_path / "one" / "train.bin", 2)
    many = pack_split(tok, docs, tmp_path / "many" / "train.bin", 2, chunk_bytes=20_000)  # ~40 chunks
    assert one.meta() == many.meta() and one.byte_fallback_tokens == many.byte_fallback_tokens
    one_bytes = (tmp_path / "one" / "train.bin").read_bytes()
    assert (tmp_path / "many" / "train.bin").read_bytes() == one_bytes
    assert (out / "data" / "tokens" / "train.bin").read_bytes() == one_bytes


def test_empty_splits(stdlib_sample: Path, tmp_path: Path) -> None:
    docs = sample_documents(stdlib_sample)[:5]
    prepared = write_prepared(tmp_path / "prepared", {"train": docs})
    m = run_stage(prepared, tmp_path, "hf-bpe")
    meta = json.loads((tmp_path / "data" / "tokens" / "meta.json").read_text())
    for split in ("val", "test"):
        assert (tmp_path / "data" / "tokens" / f"{split}.bin").stat().st_size == 0
        assert meta["splits"][split]["documents"] == 0 and meta["splits"][split]["doc_offsets"] == [0]
        assert m["tokens_per_byte"][split] is None  # no rate, rather than a made-up one
    assert m["round_trip_exact"] is None and m["checked_documents"] == 0


def test_dtype_and_packing() -> None:
    assert token_dtype(65536) == np.uint16 and token_dtype(65537) == np.uint32
    packed = pack_ids([[5, 70000], [], [9]], eos_id=2, dtype=np.dtype(np.uint32))
    assert packed.dtype == np.uint32 and packed.tolist() == [5, 70000, 2, 2, 9, 2]


@pytest.mark.parametrize(("damage", "message"), [
    (lambda p: (p / "train.jsonl").unlink(), r"train.jsonl: not found \(run the prepare stage"),
    (lambda p: (p / "val.jsonl").write_text('{"path": "a.py", "text": "x"}\nnot json\n'),
     r"val.jsonl:2: not valid JSON"),
    (lambda p: (p / "test.jsonl").write_text('{"path": "a.py"}\n'),
     r"test.jsonl:1: expected string fields 'path' and 'text'"),
    (lambda p: (p / "test.jsonl").write_text('{"path": "a.py", "text": "x", "bytes": 5}\n'),
     r"test.jsonl:1: 'bytes' is 5 but the text has 1 UTF-8 bytes"),
    (lambda p: (p / "val.jsonl").write_bytes(b'{"path": "a.py", "text": "caf\xe9"}\n'),
     r"val.jsonl: not UTF-8"),
    (lambda p: (p / "train.jsonl").write_text(""), r"train.jsonl: no documents to train the tokenizer on"),
], ids=["missing", "bad-json", "missing-field", "bytes-mismatch", "not-utf8", "empty-train"])
def test_bad_prepared_data_is_one_clear_error_and_writes_nothing(damage: Any, message: str, prepared: Path,
                                                                 tmp_path: Path) -> None:
    bad = tmp_path / "prepared"
    shutil.copytree(prepared, bad)
    damage(bad)
    with pytest.raises(StageError, match=message):
        run_stage(bad, tmp_path / "out", "hf-bpe")
    assert not (tmp_path / "out").exists()


def test_read_prepared_keeps_exact_text(tmp_path: Path) -> None:
    text = "a\r\nb\tc\x0c \u2581 </s> 😀"
    write_prepared(tmp_path, {"train": [("x.py", text)]})
    assert read_prepared(tmp_path / "train.jsonl") == [Document("x.py", text, len(text.encode()))]
