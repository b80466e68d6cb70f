"""Packing: prepared documents -> one token stream per split, `doc0 EOS doc1 EOS ...`, as a flat
uint16/uint32 file that training reads with numpy.memmap and no per-step work (docs/pipeline.md)."""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from codex_ml.io import atomic_open
from codex_ml.runtime import StageError, progress_enabled
from codex_ml.tokenization.base import CodexTokenizer

# Text per encode call: few calls (each ends in a tail where some threads idle), while the Python
# lists of ids in flight (three chunks: ~100 MB each) stay bounded whatever the corpus size.
CHUNK_BYTES = 8 << 20


@dataclass(frozen=True)
class Document:
    path: str
    text: str
    bytes: int


@dataclass
class PackedSplit:
    """One split's entry of meta.json, plus the byte-fallback count for metrics."""

    file: str
    tokens: int = 0  # including one EOS per document
    bytes: int = 0
    doc_offsets: list[int] = field(default_factory=lambda: [0])
    doc_bytes: list[int] = field(default_factory=list)
    doc_paths: list[str] = field(default_factory=list)
    byte_fallback_tokens: int = 0

    def meta(self) -> dict[str, Any]:
        return {"file": self.file, "tokens": self.tokens, "bytes": self.bytes,
                "documents": len(self.doc_paths), "doc_offsets": self.doc_offsets,
                "doc_bytes": self.doc_bytes, "doc_paths": self.doc_paths}


def token_dtype(vocab_size: int) -> np.dtype[Any]:
    return np.dtype(np.uint16) if vocab_size <= 2**16 else np.dtype(np.uint32)


def read_prepared(path: Path) -> list[Document]:
    """data/prepared/{split}.jsonl as documents, in file order; a bad line is one clear error."""
    if not path.is_file():
        raise StageError(f"{path}: not found (run the prepare stage first: `dvc repro prepare`)")
    try:
        with open(path, encoding="utf-8") as f:
            docs = [_document(path, n, line) for n, line in enumerate(f, 1)]
    except UnicodeDecodeError as exc:
        raise StageError(f"{path}: not UTF-8 ({exc})") from None
    return docs


def _document(path: Path, n: int, line: str) -> Document:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise StageError(f"{path}:{n}: not valid JSON ({exc})") from None
    if not isinstance(record, dict):
        raise StageError(f"{path}:{n}: expected a JSON object")
    text, doc_path = record.get("text"), record.get("path")
    if not isinstance(text, str) or not isinstance(doc_path, str):
        raise StageError(f"{path}:{n}: expected string fields 'path' and 'text'")
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:  # a lone surrogate escaped into the JSON
        raise StageError(f"{path}:{n}: 'text' is not encodable as UTF-8 ({exc.reason})") from None
    if record.get("bytes", size) != size:  # a cheap check that the file is intact
        raise StageError(f"{path}:{n}: 'bytes' is {record['bytes']!r} but the text has {size} UTF-8 bytes")
    return Document(doc_path, text, size)


def chunks(docs: Sequence[Document], chunk_bytes: int = CHUNK_BYTES) -> Iterator[Sequence[Document]]:
    start, size = 0, 0
    for i, doc in enumerate(docs):
        size += doc.bytes
        if size >= chunk_bytes:
            yield docs[start:i + 1]
            start, size = i + 1, 0
    if start < len(docs):
        yield docs[start:]


def encode_chunks(tok: CodexTokenizer, docs: Sequence[Document], threads: int,
                  chunk_bytes: int = CHUNK_BYTES) -> Iterator[tuple[Sequence[Document], list[list[int]]]]:
    """Each chunk of documents with its ids, in order.

    The backends encode with their own threads and release the GIL, so while the caller packs one
    chunk, the next two encode. Two at once, because a batch ends with one thread finishing the
    last long document while the others idle; the next batch fills those cores."""
    in_flight = 2 if threads > 1 else 1
    with ThreadPoolExecutor(max_workers=in_flight) as pool:
        window: deque[tuple[Sequence[Document], Future[list[list[int]]]]] = deque()
        for chunk in chunks(docs, chunk_bytes):
            window.append((chunk, pool.submit(tok.encode_batch, [d.text for d in chunk], threads)))
            if len(window) > in_flight:
                done, job = window.popleft()
                yield done, job.result()
        while window:
            done, job = window.popleft()
            yield done, job.result()


def pack_ids(ids: Sequence[Sequence[int]], eos_id: int, dtype: np.dtype[Any]) -> np.ndarray:
    """ids of consecutive documents -> one flat array with EOS after each document."""
    lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))
    flat = np.fromiter(chain.from_iterable(ids), dtype=dtype, count=int(lengths.sum()))
    return np.insert(flat, np.cumsum(lengths), eos_id)


def pack_split(tok: CodexTokenizer, docs: Sequence[Document], out_path: Path, threads: int,
               fallback_table: np.ndarray | None = None, chunk_bytes: int = CHUNK_BYTES) -> PackedSplit:
    """Encode `docs` and write them to `out_path` (atomically) as one packed stream."""
    eos = tok.special_ids.eos
    dtype = token_dtype(tok.vocab_size)
    table = tok.byte_fallback_table() if fallback_table is None else fallback_table
    packed = PackedSplit(file=out_path.name)
    bar = tqdm(total=sum(d.bytes for d in docs), desc=f"encode {out_path.stem}", unit="B",
               unit_scale=True, disable=not progress_enabled(), dynamic_ncols=True)
    with atomic_open(out_path, "wb", encoding=None) as f, bar:
        for chunk, ids in encode_chunks(tok, docs, threads, chunk_bytes):
            arr = pack_ids(ids, eos, dtype)
            arr.tofile(f)
            packed.byte_fallback_tokens += int(np.count_nonzero(table[arr]))
            for doc, doc_ids in zip(chunk, ids, strict=True):
                packed.tokens += len(doc_ids) + 1
                packed.doc_offsets.append(packed.tokens)
                packed.doc_bytes.append(doc.bytes)
                packed.doc_paths.append(doc.path)
                packed.bytes += doc.bytes
            bar.update(sum(d.bytes for d in chunk))
    return packed


def read_tokens(path: Path, dtype: str) -> np.ndarray:
    """A packed file as readers read it (an empty split is an empty array: mmap cannot map 0 bytes)."""
    if path.stat().st_size == 0:
        return np.zeros(0, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r")
