"""Packing: prepared shards -> token shards, `doc0 EOS doc1 EOS ...` as flat uint16/uint32 files that
training reads with numpy.memmap and no per-step work, plus the per-document index (codex_ml/shards.py).

Everything streams: documents are read a chunk at a time, so memory holds a few chunks of text and
ids whatever the corpus size."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from codex_ml.handoffs import ShardMeta, SplitMeta, token_dtype_name
from codex_ml.runtime import StageError, progress_enabled, release_freed_memory
from codex_ml.shards import INDEX_SCHEMA, index_name, iter_prepared, iter_shard, prepared_shards, shard_name
from codex_ml.tokenization.codex_tokenizer import CodexTokenizer

# Text per encode call: few calls (each ends in a tail where some threads idle), while the Python
# lists of ids in flight (three chunks: ~100 MB each) stay bounded whatever the corpus size.
CHUNK_BYTES = 8 << 20


@dataclass(frozen=True)
class Document:
    path: str
    text: str
    bytes: int


def document(where: str, record: dict[str, Any]) -> Document:
    """A prepared record as a Document; its `bytes` must match its text (a cheap integrity check)."""
    text = record["text"]
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:  # a lone surrogate escaped into the JSON
        raise StageError(f"{where}: 'text' is not encodable as UTF-8 ({exc.reason})") from None
    if record.get("bytes", size) != size:
        raise StageError(f"{where}: 'bytes' is {record['bytes']!r} but the text has {size} UTF-8 bytes")
    return Document(record["path"], text, size)


def read_documents(prepared_dir: Path, split: str) -> Iterator[Document]:
    """A split's prepared documents in order, streamed from its shards."""
    for where, record in iter_prepared(prepared_dir, split):
        yield document(where, record)


def chunks(docs: Iterable[Document], chunk_bytes: int = CHUNK_BYTES) -> Iterator[list[Document]]:
    chunk: list[Document] = []
    size = 0
    for doc in docs:
        chunk.append(doc)
        size += doc.bytes
        if size >= chunk_bytes:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


def encode_chunks(tok: CodexTokenizer, docs: Iterable[Document], threads: int,
                  chunk_bytes: int = CHUNK_BYTES) -> Iterator[tuple[list[Document], list[list[int]]]]:
    """Each chunk of documents with its ids, in order.

    The backends encode with their own threads and release the GIL, so while the caller packs one
    chunk, the next two encode. Two at once, because a batch ends with one thread finishing the
    last long document while the others idle; the next batch fills those cores."""
    in_flight = 2 if threads > 1 else 1
    with ThreadPoolExecutor(max_workers=in_flight) as pool:
        window: deque[tuple[list[Document], Future[list[list[int]]]]] = deque()
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


def token_dtype(vocab_size: int) -> np.dtype[Any]:
    return np.dtype(token_dtype_name(vocab_size))


@dataclass
class PackedShard:
    """One token shard as written: its counts and its rows of the split's index (offsets in the shard)."""

    file: str
    tokens: int
    documents: int
    bytes: int
    byte_fallback_tokens: int
    rows: pa.Table  # path, bytes, tokens


def pack_shard(tok: CodexTokenizer, source: Path, out_path: Path, threads: int,
               fallback_table: np.ndarray, chunk_bytes: int = CHUNK_BYTES) -> PackedShard:
    """Encode one prepared shard into one token shard; a pure function of the shard and tokenizer, so
    shards can be packed in any order, anywhere (the datatrove engine runs one task per shard)."""
    eos = tok.special_ids.eos
    dtype = token_dtype(tok.vocab_size)
    paths: list[str] = []
    sizes: list[int] = []
    lengths: list[np.ndarray] = []
    fallback = 0
    docs = (document(where, record) for where, record in iter_shard(source))
    with open(out_path, "wb") as f:
        for chunk, ids in encode_chunks(tok, docs, threads, chunk_bytes):
            arr = pack_ids(ids, eos, dtype)
            arr.tofile(f)
            fallback += int(np.count_nonzero(fallback_table[arr]))
            lengths.append(np.fromiter((len(x) + 1 for x in ids), dtype=np.int64, count=len(ids)))
            paths += [d.path for d in chunk]
            sizes += [d.bytes for d in chunk]
            del ids, arr
            release_freed_memory()  # what the encoding threads freed (runtime.py says why)
    tokens = np.concatenate(lengths) if lengths else np.zeros(0, dtype=np.int64)
    rows = pa.table({"path": pa.array(paths, pa.string()), "bytes": pa.array(sizes, pa.int64()),
                     "tokens": pa.array(tokens, pa.int64())})
    return PackedShard(out_path.name, int(tokens.sum()), len(paths), sum(sizes), fallback, rows)


@dataclass
class PackedSplit:
    """One split's entry of meta.json, plus the byte-fallback count for metrics."""

    index: str
    tokens: int = 0  # including one EOS per document
    bytes: int = 0
    documents: int = 0
    shards: list[ShardMeta] = field(default_factory=list)
    byte_fallback_tokens: int = 0

    def meta(self) -> SplitMeta:
        return SplitMeta(tokens=self.tokens, bytes=self.bytes, documents=self.documents, shards=self.shards,
                         index=self.index)


def assemble_split(split: str, shards: Iterable[PackedShard], out_dir: Path) -> PackedSplit:
    """The split's index (one row group per shard, offsets into the split's stream) and meta entry."""
    packed = PackedSplit(index=index_name(split))
    with pq.ParquetWriter(out_dir / packed.index, INDEX_SCHEMA, compression="zstd") as index:
        for shard in shards:
            lengths = shard.rows.column("tokens").to_numpy()
            offsets = packed.tokens + np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
            rows = shard.rows
            index.write_table(pa.table({"path": rows.column("path"), "bytes": rows.column("bytes"),
                                        "offset": pa.array(offsets[:len(lengths)], pa.int64()),
                                        "tokens": rows.column("tokens")}, schema=INDEX_SCHEMA))
            packed.tokens += shard.tokens
            packed.bytes += shard.bytes
            packed.documents += shard.documents
            packed.byte_fallback_tokens += shard.byte_fallback_tokens
            packed.shards.append(ShardMeta(file=shard.file, tokens=shard.tokens, documents=shard.documents))
    return packed


def pack_split(tok: CodexTokenizer, prepared_dir: Path, split: str, out_dir: Path, threads: int,
               fallback_table: np.ndarray | None = None, chunk_bytes: int = CHUNK_BYTES) -> PackedSplit:
    """Encode a split's prepared shards into `out_dir`: token shard N for prepared shard N, and the
    split's index. Plain files: the caller builds `out_dir` aside and swaps it in (io.atomic_dir)."""
    table = tok.byte_fallback_table() if fallback_table is None else fallback_table
    sources = prepared_shards(prepared_dir, split)
    bar = tqdm(total=sum(p.stat().st_size for p in sources), desc=f"encode {split}", unit="B",
               unit_scale=True, disable=not progress_enabled(), dynamic_ncols=True)

    def packed() -> Iterator[PackedShard]:
        for number, source in enumerate(sources):
            yield pack_shard(tok, source, out_dir / shard_name(split, number, ".bin"), threads, table,
                             chunk_bytes)
            bar.update(source.stat().st_size)

    with bar:
        return assemble_split(split, packed(), out_dir)
