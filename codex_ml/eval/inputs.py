"""What eval reads (`EvalInputs`): one split as a list of documents, each with its token ids and UTF-8
byte count.

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

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from codex_ml import paths
from codex_ml.handoffs import META_FILE, TokenMeta
from codex_ml.runtime import StageError
from codex_ml.shards import iter_prepared, open_stream, read_index


@dataclass(frozen=True)
class EvalInputs:
    """Where to read from (the pipeline's layout by default: codex_ml/paths.py). With `retokenize`,
    documents come from the prepared text encoded with the model's own tokenizer instead of the token
    files (for models with another tokenizer)."""

    model_dir: Path
    tokens_dir: Path = paths.TOKENS
    prepared_dir: Path = paths.PREPARED
    tokenizer_dir: Path | None = paths.TOKENIZER  # used when model_dir has no tokenizer files
    retokenize: bool = False
    # False: there is no train split (a whole corpus scored as one, `codex eval --data`), so no unigram
    # baseline: its `unigram_bpb` is null rather than a unigram fitted on the very text it scores.
    train_split: bool = True

    @classmethod
    def under(cls, root: Path, **options: Any) -> EvalInputs:
        """What the eval stage reads inside `root` (models/trained, data/tokens, ...); `options` override."""
        return cls(**{"model_dir": root / paths.TRAINED, "tokens_dir": root / paths.TOKENS,
                      "prepared_dir": root / paths.PREPARED, "tokenizer_dir": root / paths.TOKENIZER,
                      **options})


@dataclass(frozen=True)
class Document:
    path: str  # the document's stable identity (prepared `path`)
    nbytes: int  # UTF-8 bytes of the document's text
    ids: np.ndarray  # int64 token ids: the document's tokens followed by one EOS


def load_token_split(tokens_dir: Path, split: str, meta: TokenMeta | None = None) -> list[Document]:
    """Cut a split's token stream into documents by its index, checking both against meta.json."""
    meta = meta or TokenMeta.load(tokens_dir)
    info = meta.split(split, tokens_dir)
    stream = open_stream(tokens_dir, meta, split)
    index = read_index(tokens_dir / info.index)
    off = index.offsets()
    if off[-1] != info.tokens:
        raise StageError(f"{tokens_dir / info.index}: its documents hold {off[-1]} tokens, but "
                         f"{META_FILE} says {info.tokens}")
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
                             f"{META_FILE}")
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
