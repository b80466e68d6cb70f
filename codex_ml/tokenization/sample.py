"""The tokenizer's training sample: the train documents a tokenizer learns from, at most
`tokenizer.sample_mb` of them, drawn in a seeded hash order so the sample does not change when other
documents are added or shards are cut elsewhere."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from codex_ml.shards import iter_prepared, prepared_shards
from codex_ml.tokenization.pack import document, read_documents


@dataclass
class Sample:
    """The train documents a tokenizer learns from, and how much of the split they are."""

    texts: list[str]  # emptied once the tokenizer is trained (release); the counts stay
    documents: int
    bytes: int
    of_documents: int
    of_bytes: int

    def release(self) -> None:
        self.texts = []

    def metrics(self, budget_mb: int, seed: int) -> dict[str, Any]:
        return {"documents": self.documents, "bytes": self.bytes, "of_documents": self.of_documents,
                "of_bytes": self.of_bytes, "budget_mb": budget_mb, "seed": seed}


def sample_key(seed: int, path: str, sha256: str) -> int:
    """A document's place in the sample order: a seeded hash of its identity and content, so the
    sample does not change when other documents are added or shards are cut elsewhere."""
    digest = hashlib.sha256(f"{seed}\0{path}\0{sha256}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def training_sample(prepared_dir: Path, budget_bytes: int, seed: int) -> Sample:
    """The train split's documents (in split order) whose text fits in `budget_bytes`: all of them when
    the split is smaller, otherwise those first in a seeded hash order (a uniform, deterministic
    sample of documents). Two passes over the split; memory holds 16 bytes per document and the
    sample's text."""
    shard_bytes = sum(p.stat().st_size for p in prepared_shards(prepared_dir, "train"))
    if shard_bytes <= budget_bytes:  # JSON lines are longer than their text: everything fits
        docs = list(read_documents(prepared_dir, "train"))
        total = sum(d.bytes for d in docs)
        return Sample([d.text for d in docs], len(docs), total, len(docs), total)
    keys, sizes = [], []
    for where, record in iter_prepared(prepared_dir, "train"):
        doc = document(where, record)
        keys.append(sample_key(seed, doc.path, str(record.get("sha256", ""))))
        sizes.append(doc.bytes)
    order = np.argsort(np.asarray(keys, dtype=np.uint64), kind="stable")
    within = np.cumsum(np.asarray(sizes, dtype=np.int64)[order]) <= budget_bytes
    chosen = np.zeros(len(keys), dtype=bool)
    chosen[order[within]] = True
    texts = [d.text for i, d in enumerate(read_documents(prepared_dir, "train")) if chosen[i]]
    return Sample(texts, len(texts), int(np.asarray(sizes)[chosen].sum()), len(keys), int(sum(sizes)))
