"""What eval reads: one split as a list of documents, each with its token ids and UTF-8 byte count.

Two ways in (docs/pipeline.md has the file formats):
- `load_token_split`: the tokenize stage's packed stream `data/tokens/{split}.bin` + `meta.json`, cut
  into documents by `doc_offsets`. This is what the pipeline's model was trained on.
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
    """Cut `{split}.bin` into documents, checking it against meta.json's offsets and sizes."""
    meta = meta or load_meta(tokens_dir)
    where = f"{tokens_dir / 'meta.json'} splits.{split}"
    info = meta.raw["splits"].get(split)
    if not isinstance(info, dict):
        raise StageError(f"{tokens_dir / 'meta.json'}: no entry for split {split!r} under 'splits'")
    offsets = _field(info, "doc_offsets", list, where)
    doc_bytes = _field(info, "doc_bytes", list, where)
    paths = _field(info, "doc_paths", list, where)
    n_tokens = _field(info, "tokens", int, where)
    n_docs = len(doc_bytes)
    if len(paths) != n_docs or len(offsets) != n_docs + 1:
        raise StageError(f"{where}: expected len(doc_offsets) = len(doc_bytes) + 1 = len(doc_paths) + 1, "
                         f"got {len(offsets)}, {len(doc_bytes)}, {len(paths)}")
    off = np.asarray(offsets, dtype=np.int64)
    if n_docs and (off[0] != 0 or off[-1] != n_tokens or np.any(np.diff(off) < 1)):
        raise StageError(f"{where}: doc_offsets must start at 0, increase, and end at tokens={n_tokens}")
    bin_path = tokens_dir / str(info.get("file", f"{split}.bin"))
    if not bin_path.is_file():
        raise StageError(f"{bin_path}: not found (run the tokenize stage first)")
    itemsize = np.dtype(meta.dtype).itemsize
    size = bin_path.stat().st_size
    if size != n_tokens * itemsize:
        raise StageError(f"{bin_path}: {size} bytes, but meta.json says {n_tokens} {meta.dtype} tokens "
                         f"({n_tokens * itemsize} bytes)")
    stream = (np.memmap(bin_path, dtype=meta.dtype, mode="r") if size
              else np.zeros(0, dtype=meta.dtype))  # numpy cannot map an empty file
    docs = []
    for i in range(n_docs):
        ids = np.asarray(stream[off[i]:off[i + 1]], dtype=np.int64)
        if ids[-1] != meta.eos_id:
            raise StageError(f"{bin_path}: document {i} ({paths[i]}) does not end with eos_id={meta.eos_id}")
        docs.append(Document(path=str(paths[i]), nbytes=int(doc_bytes[i]), ids=ids))
    if docs:
        top = max(int(d.ids.max()) for d in docs)
        if top >= meta.vocab_size:
            raise StageError(f"{bin_path}: token id {top} >= vocab_size {meta.vocab_size} in meta.json")
    return docs


def load_prepared(prepared_dir: Path, split: str) -> list[dict[str, Any]]:
    """The prepare stage's records for one split, in file (= token stream) order."""
    path = prepared_dir / f"{split}.jsonl"
    if not path.is_file():
        raise StageError(f"{path}: not found (run the prepare stage first)")
    records = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise StageError(f"{path}:{n}: not valid JSON: {exc}") from None
            if not isinstance(rec, dict) or not isinstance(rec.get("path"), str) \
                    or not isinstance(rec.get("text"), str):
                raise StageError(f"{path}:{n}: expected an object with string 'path' and 'text'")
            records.append(rec)
    return records


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
