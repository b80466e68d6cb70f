"""The sharded files that pass between stages (docs/pipeline.md): their names, writers and readers.

A corpus of any size is a few tens of files that DVC tracks, never one huge file or one per document:

- `data/prepared/{split}-NNNNN.jsonl`: prepare's documents, one JSON object a line (`path`, `text`,
  `sha256`, `bytes`), in document order. A shard closes once it holds `data.shard_mb` MiB of text;
  every split has at least shard 00000 (empty when the split is).
- `data/tokens/{split}-NNNNN.bin`: token shard N holds the documents of prepared shard N, packed as
  `doc EOS doc EOS ...` (uint16, or uint32 past 65,536 ids). A split's stream is its shards in order.
- `data/tokens/{split}.index.parquet`: one row per document, in stream order: `path`, `bytes` (UTF-8
  bytes of its text), `offset` (its first token in the split's stream) and `tokens` (with its EOS).
- `data/tokens/meta.json`: dtype, vocabulary and special ids, and per split its totals, the shard files
  with their token counts, and the index file (its model: handoffs.TokenMeta).

Readers see a split as one `TokenStream`: windows may cross shard boundaries exactly as they crossed
document boundaries in a single stream, so sampling does not depend on where shards were cut.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from codex_ml.handoffs import META_FILE, ShardMeta, SplitMeta, TokenMeta
from codex_ml.runtime import StageError

INDEX_SCHEMA = pa.schema([("path", pa.string()), ("bytes", pa.int64()), ("offset", pa.int64()),
                          ("tokens", pa.int64())])
INDEX_COLUMNS = tuple(INDEX_SCHEMA.names)


def shard_name(split: str, number: int, suffix: str) -> str:
    return f"{split}-{number:05d}{suffix}"


def index_name(split: str) -> str:
    return f"{split}.index.parquet"


# --------------------------------------------------------------------------------------------
# Prepared text
# --------------------------------------------------------------------------------------------


def record_line(record: dict[str, Any]) -> str:
    """One prepared record as its JSONL line (sorted keys: equal records give equal bytes)."""
    return json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n"


class PreparedWriter:
    """Writes one split's records into `{split}-NNNNN.jsonl` shards of about `max_bytes` of text each.

    A shard closes after the record that takes it to `max_bytes`, so documents never span shards.
    Write into a folder that is swapped in whole (io.atomic_dir): shards are plain files here.
    """

    def __init__(self, folder: Path, split: str, max_bytes: int):
        self.folder, self.split, self.max_bytes = folder, split, max_bytes
        self.shards: list[str] = []
        self._file: IO[str] | None = None
        self._bytes = 0

    def write(self, record: dict[str, Any]) -> None:
        if self._file is None:
            self._open()
        assert self._file is not None
        self._file.write(record_line(record))
        self._bytes += int(record["bytes"])
        if self._bytes >= self.max_bytes:
            self._file.close()
            self._file = None

    def _open(self) -> None:
        name = shard_name(self.split, len(self.shards), ".jsonl")
        self.shards.append(name)
        self._file = open(self.folder / name, "w", encoding="utf-8", newline="\n")  # noqa: SIM115
        self._bytes = 0

    def close(self) -> list[str]:
        """Close the last shard (an empty split gets one empty shard) and return the shard names."""
        if self._file is None and not self.shards:
            self._open()
        if self._file is not None:
            self._file.close()
            self._file = None
        return self.shards


def write_prepared(folder: Path, split: str, records: Iterable[dict[str, Any]],
                   max_bytes: int = 64 << 20) -> list[str]:
    """A split's records as prepared shards (`bytes` is filled in from the text when missing). For
    writers that are not the prepare stage: tests, benchmarks and tools."""
    folder.mkdir(parents=True, exist_ok=True)
    writer = PreparedWriter(folder, split, max_bytes)
    for record in records:
        writer.write({"bytes": len(record["text"].encode("utf-8")), **record})
    return writer.close()


def prepared_shards(folder: Path, split: str) -> list[Path]:
    """A split's prepared shards in order; StageError when there are none."""
    shards = sorted(folder.glob(shard_name(split, 0, ".jsonl").replace("00000", "[0-9]" * 5)))
    if not shards:
        raise StageError(f"{folder / shard_name(split, 0, '.jsonl')}: not found (run the prepare stage "
                         "first: `dvc repro prepare`)")
    return shards


def iter_prepared(folder: Path, split: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every record of a split in order, each with where it is (`file:line`) for messages. A line that
    is not a JSON object with string `path` and `text` is one StageError naming the file and line."""
    for shard in prepared_shards(folder, split):
        yield from iter_shard(shard)


def iter_shard(shard: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    try:
        with open(shard, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                where = f"{shard}:{n}"
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise StageError(f"{where}: not valid JSON ({exc})") from None
                if not isinstance(record, dict) or not isinstance(record.get("text"), str) \
                        or not isinstance(record.get("path"), str):
                    raise StageError(f"{where}: expected an object with string fields 'path' and 'text'")
                yield where, record
    except UnicodeDecodeError as exc:
        raise StageError(f"{shard}: not UTF-8 ({exc})") from None


# --------------------------------------------------------------------------------------------
# Token shards and the per-document index
# --------------------------------------------------------------------------------------------


@dataclass
class SplitIndex:
    """The per-document index of one split, as columns (the parquet file's content)."""

    paths: list[str] = field(default_factory=list)
    bytes: list[int] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)  # with the document's EOS

    def offsets(self) -> np.ndarray:
        """len(documents) + 1 offsets: document i is stream[offsets[i]:offsets[i + 1]]."""
        return np.concatenate([[0], np.cumsum(np.asarray(self.tokens, dtype=np.int64))]).astype(np.int64)

    def extend(self, other: SplitIndex) -> None:
        self.paths += other.paths
        self.bytes += other.bytes
        self.tokens += other.tokens


def write_index(path: Path, index: SplitIndex) -> None:
    offsets = index.offsets()
    table = pa.table({"path": index.paths, "bytes": index.bytes, "offset": offsets[:-1],
                      "tokens": index.tokens}, schema=INDEX_SCHEMA)
    pq.write_table(table, path, compression="zstd")


def read_index(path: Path) -> SplitIndex:
    if not path.is_file():
        raise StageError(f"{path}: not found (run the tokenize stage first: `dvc repro tokenize`)")
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise StageError(f"{path}: not a readable parquet file ({exc})") from None
    missing = [c for c in INDEX_COLUMNS if c not in table.column_names]
    if missing:
        raise StageError(f"{path}: missing column(s) {', '.join(missing)} "
                         f"(expected {', '.join(INDEX_COLUMNS)})")
    index = SplitIndex(paths=table.column("path").to_pylist(), bytes=table.column("bytes").to_pylist(),
                       tokens=table.column("tokens").to_pylist())
    offset = table.column("offset").to_numpy()
    if len(offset) and not np.array_equal(offset, index.offsets()[:-1]):
        raise StageError(f"{path}: column 'offset' is not the running sum of column 'tokens'")
    return index


class TokenStream:
    """A split's token shards as one read-only sequence: `len()` and contiguous slices `[a:b]` (numpy
    arrays, gathered across shards when a slice crosses a boundary). Shards are memory-mapped."""

    def __init__(self, shards: Sequence[np.ndarray]):
        self.shards = [s for s in shards if len(s)]
        sizes = np.asarray([len(s) for s in self.shards], dtype=np.int64)
        self.starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.dtype = self.shards[0].dtype if self.shards else np.dtype(np.uint16)

    def __len__(self) -> int:
        return int(self.starts[-1])

    def __getitem__(self, key: slice) -> np.ndarray:
        if not isinstance(key, slice) or key.step not in (None, 1):
            raise TypeError("TokenStream supports contiguous slices only")
        start, stop, _ = key.indices(len(self))
        if stop <= start:
            return np.zeros(0, dtype=self.dtype)
        first = int(np.searchsorted(self.starts, start, side="right")) - 1
        parts = []
        i = first
        while start < stop:
            lo = start - int(self.starts[i])
            hi = min(stop, int(self.starts[i + 1])) - int(self.starts[i])
            parts.append(self.shards[i][lo:hi])
            start = int(self.starts[i]) + hi
            i += 1
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def chunks(self) -> Iterator[np.ndarray]:
        """The shards in order (to scan a split without holding it in memory)."""
        yield from self.shards

    def max(self) -> int:
        return max((int(s.max()) for s in self.shards), default=-1)

    def bincount(self, minlength: int) -> np.ndarray:
        counts = np.zeros(minlength, dtype=np.int64)
        for s in self.shards:
            c = np.bincount(s, minlength=minlength)
            counts[:len(c)] += c[:minlength]
        return counts


def read_tokens(path: Path, dtype: str) -> np.ndarray:
    """One token shard, memory-mapped (an empty one is an empty array: mmap cannot map 0 bytes)."""
    if path.stat().st_size == 0:
        return np.zeros(0, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r")


def open_stream(tokens_dir: Path, meta: TokenMeta, split: str) -> TokenStream:
    """A split's stream, checked against meta.json: every shard present with the size it lists."""
    meta_path = tokens_dir / META_FILE
    itemsize = np.dtype(meta.dtype).itemsize
    shards = []
    for shard in meta.split(split, tokens_dir).shards:
        path = tokens_dir / shard.file
        if not path.is_file():
            raise StageError(f"{path}: not found (listed in {meta_path})")
        if path.stat().st_size != shard.tokens * itemsize:
            raise StageError(f"{path}: {path.stat().st_size} bytes, but {meta_path} says {shard.tokens} "
                             f"{meta.dtype} tokens ({shard.tokens * itemsize} bytes)")
        shards.append(read_tokens(path, meta.dtype))
    return TokenStream(shards)


def token_files(tokens_dir: Path, meta: TokenMeta, split: str) -> list[Path]:
    """Every file that holds a split's tokens and index (for fingerprints)."""
    info = meta.split(split, tokens_dir)
    return [tokens_dir / s.file for s in info.shards] + [tokens_dir / info.index]


def write_token_split(folder: Path, split: str, stream: np.ndarray, index: SplitIndex) -> SplitMeta:
    """A split as one token shard and its index, returning its meta.json entry. For writers that hold
    a whole (small) split in memory: tests, benchmarks and tools; the tokenize stage streams."""
    offsets = index.offsets()
    if offsets[-1] != len(stream):
        raise ValueError(f"the index lists {offsets[-1]} tokens, the stream has {len(stream)}")
    name = shard_name(split, 0, ".bin")
    stream.tofile(folder / name)
    write_index(folder / index_name(split), index)
    return SplitMeta(tokens=len(stream), bytes=sum(index.bytes), documents=len(index.paths),
                     shards=[ShardMeta(file=name, tokens=len(stream), documents=len(index.paths))],
                     index=index_name(split))
