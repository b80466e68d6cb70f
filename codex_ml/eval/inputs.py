"""What eval reads: one split as a list of documents, each with its token ids and UTF-8 byte count.

Two ways in (docs/pipeline.md has the file formats):
- `load_token_split`: the tokenize stage's token shards `data/tokens/{split}-NNNNN.bin` + `meta.json`,
  cut into documents by the split's index (`{split}.index.parquet`). This is what the pipeline's
  model was trained on.
- `encode_prepared`: the prepare stage's text, encoded with a model's own tokenizer. This is how
  `codex eval --retokenize` scores a model whose tokenizer is not the pipeline's; bits per byte stay
  comparable because they are normalised by UTF-8 bytes, not tokens.

Either way each document's ids end with the EOS that separates documents in the stream, and that EOS
is scored too: predicting where a document ends is part of compressing it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from codex_ml.runtime import StageError
from codex_ml.shards import iter_prepared, open_stream, read_index

SPLITS = ("val", "test")


@dataclass(frozen=True)
class Document:
    path: str  # the document's stable identity (prepared `path`)
    nbytes: int  # UTF-8 bytes of the document's text
    ids: np.ndarray  # int64 token ids: the document's tokens followed by one EOS


@dataclass(frozen=True)
class TokenMeta:
    dtype: str
    vocab_size: int
    eos_id: int
    pad_id: int
    raw: dict[str, Any]


def _field(obj: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in obj:
        raise StageError(f"{where}: missing key {key!r}")
    value = obj[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise StageError(f"{where}: key {key!r} has the wrong type ({type(value).__name__})")
    return value


def load_meta(tokens_dir: Path) -> TokenMeta:
    path = tokens_dir / "meta.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StageError(f"{path}: not found (run the tokenize stage first)") from None
    except json.JSONDecodeError as exc:
        raise StageError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise StageError(f"{path}: expected a JSON object")
    dtype = _field(raw, "dtype", str, str(path))
    if dtype not in ("uint16", "uint32"):
        raise StageError(f"{path}: key 'dtype' must be uint16 or uint32, got {dtype!r}")
    _field(raw, "splits", dict, str(path))
    where = str(path)
    return TokenMeta(dtype=dtype, vocab_size=_field(raw, "vocab_size", int, where),
                     eos_id=_field(raw, "eos_id", int, where), pad_id=_field(raw, "pad_id", int, where),
                     raw=raw)


def load_token_split(tokens_dir: Path, split: str, meta: TokenMeta | None = None) -> list[Document]:
    """Cut a split's token stream into documents by its index, checking both against meta.json."""
    meta = meta or load_meta(tokens_dir)
    where = f"{tokens_dir / 'meta.json'} splits.{split}"
    info = meta.raw["splits"].get(split)
    if not isinstance(info, dict):
        raise StageError(f"{tokens_dir / 'meta.json'}: no entry for split {split!r} under 'splits'")
    n_tokens = _field(info, "tokens", int, where)
    stream = open_stream(tokens_dir, meta.raw, split)
    index = read_index(tokens_dir / str(_field(info, "index", str, where)))
    off = index.offsets()
    if off[-1] != n_tokens:
        raise StageError(f"{tokens_dir / str(info['index'])}: its documents hold {off[-1]} tokens, but "
                         f"meta.json says {n_tokens}")
    docs = []
    for i, (path, nbytes) in enumerate(zip(index.paths, index.bytes, strict=True)):
        ids = np.asarray(stream[int(off[i]):int(off[i + 1])], dtype=np.int64)
        if not len(ids) or ids[-1] != meta.eos_id:
            raise StageError(f"{tokens_dir}: {split} document {i} ({path}) does not end with "
                             f"eos_id={meta.eos_id}")
        docs.append(Document(path=str(path), nbytes=int(nbytes), ids=ids))
    if docs:
        top = max(int(d.ids.max()) for d in docs)
        if top >= meta.vocab_size:
            raise StageError(f"{tokens_dir}: {split} token id {top} >= vocab_size {meta.vocab_size} in "
                             "meta.json")
    return docs


def load_prepared(prepared_dir: Path, split: str) -> list[dict[str, Any]]:
    """The prepare stage's records for one split, in shard (= token stream) order."""
    return [record for _, record in iter_prepared(prepared_dir, split)]


def check_same_documents(docs: list[Document], records: list[dict[str, Any]], tokens_where: str,
                         prepared_where: str) -> None:
    """Token files and prepared text must describe the same documents; otherwise a stage is stale."""
    if [d.path for d in docs] != [r["path"] for r in records]:
        raise StageError(f"{tokens_where} and {prepared_where} list different documents: "
                         "rerun the tokenize stage (dvc repro)")
    for d, r in zip(docs, records, strict=True):
        if d.nbytes != len(r["text"].encode("utf-8")):
            raise StageError(f"{tokens_where}: doc_bytes of {d.path} is {d.nbytes}, but its text in "
                             f"{prepared_where} has {len(r['text'].encode('utf-8'))} bytes: rerun tokenize")


def encode_prepared(records: list[dict[str, Any]], tokenizer: Any, eos_id: int) -> list[Document]:
    """Encode prepared text with `tokenizer` (no special tokens), one EOS after each document."""
    docs = []
    for rec in records:
        ids = tokenizer(rec["text"], add_special_tokens=False)["input_ids"]
        docs.append(Document(path=rec["path"], nbytes=len(rec["text"].encode("utf-8")),
                             ids=np.asarray([*ids, eos_id], dtype=np.int64)))
    return docs
