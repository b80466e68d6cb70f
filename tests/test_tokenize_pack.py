"""The tokenize stage's outputs on real prepared stdlib data: token files laid out exactly as
docs/pipeline.md says, metrics, byte-identical reruns, and one clear error for bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from codex_ml.handoffs import TokenMeta
from codex_ml.paths import SPLITS
from codex_ml.runtime import StageError
from codex_ml.shards import open_stream, read_index
from codex_ml.shards import write_prepared as write_shards
from codex_ml.tokenization import load_tokenizer
from codex_ml.tokenization.pack import (
    Document,
    pack_ids,
    pack_split,
    read_documents,
    token_dtype,
)
from codex_ml.tokenization.sample import training_sample
from codex_ml.tokenization.stage import tokenize
from tests.tokenizekit import (
    folder_bytes,
    sample_documents,
    small_params,
    split_sample,
    write_prepared,
)

META_KEYS = {"dtype", "vocab_size", "backend", "pad_id", "bos_id", "eos_id", "unk_id", "splits"}
SPLIT_KEYS = {"tokens", "bytes", "documents", "shards", "index"}


def run_stage(prepared: Path, out: Path, backend: str, **overrides: Any) -> dict[str, Any]:
    params = small_params(backend).model_copy(update=overrides)
    return tokenize(params, prepared, out / "models" / "tokenizer", out / "data" / "tokens",
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
        docs = list(read_documents(prepared, split))
        assert set(info) == SPLIT_KEYS and info["index"] == f"{split}.index.parquet"
        assert info["shards"] == [{"file": f"{split}-00000.bin", "tokens": info["tokens"],
                                   "documents": len(docs)}]
        assert info["documents"] == len(docs) > 0
        index = read_index(tokens_dir / info["index"])
        assert index.paths == [d.path for d in docs]  # prepared order
        assert index.bytes == [len(d.text.encode()) for d in docs]
        assert info["bytes"] == sum(index.bytes)
        path = tokens_dir / info["shards"][0]["file"]
        assert path.stat().st_size == info["tokens"] * 2
        stream = np.memmap(path, dtype=meta["dtype"], mode="r")  # exactly as docs/pipeline.md reads it
        offsets = index.offsets().tolist()
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
    assert m["shards"] == {split: 1 for split in SPLITS}
    train = m["tokenizer_sample"]  # the whole (small) train split
    assert train["documents"] == train["of_documents"] == meta["splits"]["train"]["documents"]
    assert train["bytes"] == train["of_bytes"] == meta["splits"]["train"]["bytes"]


def test_stage_is_byte_identical_when_rerun(staged: tuple[str, Path, dict[str, Any]], prepared: Path,
                                            tmp_path: Path) -> None:
    backend, out, _ = staged
    run_stage(prepared, tmp_path, backend)
    assert folder_bytes(tmp_path) == folder_bytes(out)


def test_chunked_encoding_changes_nothing(staged: tuple[str, Path, dict[str, Any]], prepared: Path,
                                          tmp_path: Path) -> None:
    _, out, _ = staged
    tok = load_tokenizer(out / "models" / "tokenizer")
    (tmp_path / "one").mkdir()
    (tmp_path / "many").mkdir()
    one = pack_split(tok, prepared, "train", tmp_path / "one", 2)
    many = pack_split(tok, prepared, "train", tmp_path / "many", 2, chunk_bytes=20_000)  # ~40 chunks
    assert one.meta() == many.meta() and one.byte_fallback_tokens == many.byte_fallback_tokens
    one_bytes = (tmp_path / "one" / "train-00000.bin").read_bytes()
    assert (tmp_path / "many" / "train-00000.bin").read_bytes() == one_bytes
    assert (out / "data" / "tokens" / "train-00000.bin").read_bytes() == one_bytes
    assert read_index(tmp_path / "many" / "train.index.parquet") == \
        read_index(tmp_path / "one" / "train.index.parquet")


def test_shards_follow_the_prepared_shards_and_read_as_one_stream(
        staged: tuple[str, Path, dict[str, Any]], prepared: Path, tmp_path: Path) -> None:
    """Prepared shards of ~30 KB: a token shard for each, and the split read through its shards is the
    same stream, documents and index as from one shard."""
    backend, out, _ = staged
    sharded = tmp_path / "prepared"
    for split in SPLITS:
        records = [{"path": d.path, "text": d.text} for d in read_documents(prepared, split)]
        write_shards(sharded, split, records, max_bytes=30_000)
    counts = {split: len(list(sharded.glob(f"{split}-*.jsonl"))) for split in SPLITS}
    assert counts["train"] >= 4
    run_stage(sharded, tmp_path / "out", backend)
    one, many = out / "data" / "tokens", tmp_path / "out" / "data" / "tokens"
    meta_many = json.loads((many / "meta.json").read_text())
    for split in SPLITS:
        info = meta_many["splits"][split]
        assert [s["file"] for s in info["shards"]] == [f"{split}-{i:05d}.bin" for i in range(counts[split])]
        assert sum(s["documents"] for s in info["shards"]) == info["documents"]
        a, b = open_stream(one, TokenMeta.load(one), split), open_stream(many, TokenMeta.load(many), split)
        assert len(a) == len(b) and np.array_equal(a[0:len(a)], b[0:len(b)])
        assert read_index(one / f"{split}.index.parquet") == read_index(many / f"{split}.index.parquet")
        # a window across a shard boundary is the same tokens as in the single stream
        edge = int(b.starts[1]) if len(b.starts) > 2 else len(b) // 2
        assert np.array_equal(b[edge - 5:edge + 5], a[edge - 5:edge + 5])


def test_one_and_two_workers_give_the_same_bytes(staged: tuple[str, Path, dict[str, Any]], prepared: Path,
                                                 tmp_path: Path) -> None:
    backend, out, _ = staged
    run_stage(prepared, tmp_path, backend, workers=1)
    assert folder_bytes(tmp_path / "data") == folder_bytes(out / "data")
    assert folder_bytes(tmp_path / "models") == folder_bytes(out / "models")


def test_the_tokenizer_learns_from_a_bounded_seeded_sample(prepared: Path, tmp_path: Path) -> None:
    """A budget below the train split: a sample within it, the same for the same seed whatever the
    shards, another for another seed; recorded in metrics."""
    budget = 150_000
    a = training_sample(prepared, budget, seed=1)
    total = sum(d.bytes for d in read_documents(prepared, "train"))
    assert total > 2 * budget and 0.5 * budget < a.bytes <= budget
    assert a.of_bytes == total and sum(len(t.encode()) for t in a.texts) == a.bytes
    resharded = tmp_path / "resharded"
    write_shards(resharded, "train", ({"path": d.path, "text": d.text, "sha256": r["sha256"]}
                                      for d, (_, r) in zip(read_documents(prepared, "train"),
                                                           shards_records(prepared), strict=True)),
                 max_bytes=40_000)
    assert training_sample(resharded, budget, seed=1).texts == a.texts
    assert training_sample(prepared, budget, seed=2).texts != a.texts
    texts = [d.text for d in read_documents(prepared, "train")]
    assert [texts.index(t) for t in a.texts] == sorted(texts.index(t) for t in a.texts)  # split order
    m = run_stage(prepared, tmp_path / "out", "hf-bpe", sample_mb=1)  # 1 MiB: more than this split
    assert m["tokenizer_sample"]["bytes"] == m["tokenizer_sample"]["of_bytes"]


def shards_records(prepared: Path) -> list[tuple[str, dict[str, Any]]]:
    from codex_ml.shards import iter_prepared

    return list(iter_prepared(prepared, "train"))


def test_empty_splits(stdlib_sample: Path, tmp_path: Path) -> None:
    docs = sample_documents(stdlib_sample)[:5]
    prepared = write_prepared(tmp_path / "prepared", {"train": docs})
    m = run_stage(prepared, tmp_path, "hf-bpe")
    meta = json.loads((tmp_path / "data" / "tokens" / "meta.json").read_text())
    for split in ("val", "test"):
        assert (tmp_path / "data" / "tokens" / f"{split}-00000.bin").stat().st_size == 0
        assert meta["splits"][split]["documents"] == 0
        assert read_index(tmp_path / "data" / "tokens" / f"{split}.index.parquet").paths == []
        assert m["tokens_per_byte"][split] is None  # no rate, rather than a made-up one
    assert m["round_trip_exact"] is None and m["checked_documents"] == 0


def test_dtype_and_packing() -> None:
    assert token_dtype(65536) == np.uint16 and token_dtype(65537) == np.uint32
    packed = pack_ids([[5, 70000], [], [9]], eos_id=2, dtype=np.dtype(np.uint32))
    assert packed.dtype == np.uint32 and packed.tolist() == [5, 70000, 2, 2, 9, 2]


@pytest.mark.parametrize(("damage", "message"), [
    (lambda p: (p / "train-00000.jsonl").unlink(), r"train-00000.jsonl: not found \(run the prepare stage"),
    (lambda p: (p / "val-00000.jsonl").write_text('{"path": "a.py", "text": "x"}\nnot json\n'),
     r"val-00000.jsonl:2: not valid JSON"),
    (lambda p: (p / "test-00000.jsonl").write_text('{"path": "a.py"}\n'),
     r"test-00000.jsonl:1: expected an object with string fields 'path' and 'text'"),
    (lambda p: (p / "test-00000.jsonl").write_text('{"path": "a.py", "text": "x", "bytes": 5}\n'),
     r"test-00000.jsonl:1: 'bytes' is 5 but the text has 1 UTF-8 bytes"),
    (lambda p: (p / "val-00000.jsonl").write_bytes(b'{"path": "a.py", "text": "caf\xe9"}\n'),
     r"val-00000.jsonl: not UTF-8"),
    (lambda p: (p / "train-00000.jsonl").write_text(""), r"no documents in the train split to train"),
], ids=["missing", "bad-json", "missing-field", "bytes-mismatch", "not-utf8", "empty-train"])
def test_bad_prepared_data_is_one_clear_error_and_writes_nothing(damage: Any, message: str, prepared: Path,
                                                                 tmp_path: Path) -> None:
    bad = tmp_path / "prepared"
    shutil.copytree(prepared, bad)
    damage(bad)
    with pytest.raises(StageError, match=message):
        run_stage(bad, tmp_path / "out", "hf-bpe")
    # Streaming finds a bad line only when it gets there: the folders built aside are gone again.
    assert not [p for p in (tmp_path / "out").rglob("*") if not p.is_dir()]


def test_read_prepared_keeps_exact_text(tmp_path: Path) -> None:
    text = "a\r\nb\tc\x0c \u2581 </s> 😀"
    write_prepared(tmp_path, {"train": [("x.py", text)]})
    assert list(read_documents(tmp_path, "train")) == [Document("x.py", text, len(text.encode()))]
