"""The prepare stage's work: source -> filtered, deduplicated, redacted documents in stable splits.

It streams: documents are read in source order, cut into batches, and each batch's per-document work
(content filters, hashes, the generated-file check, redaction) runs in `data.workers` processes. One
process then takes the results back in source order and decides what is kept (exact duplicates by
content hash, then near duplicates by MinHash LSH when `data.near_dedup.enabled`, in that order) and
where it goes, writing each split's shards as it goes
(codex_ml/shards.py). Memory holds a few batches plus one hash per kept document, whatever the corpus
size, and the outputs are the same bytes for any number of workers: which documents are kept depends
only on the order of the results, never on which process made them. With `data.engine: datatrove` the
per-document work runs as datatrove tasks instead, here or on a cluster (data/engine.py), and the
same one process reads their results in source order.
"""

from __future__ import annotations

import contextlib
import hashlib
import multiprocessing
import os
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from codex_ml.data.filters import REJECT_REASONS, is_generated, quality_reason, reject_reason
from codex_ml.data.near_dedup import NearDedupIndex, signature
from codex_ml.data.secrets import KINDS, redact
from codex_ml.data.sources import RawDocument, describe_source, iter_documents
from codex_ml.io import atomic_dir, write_json
from codex_ml.params import DataParams
from codex_ml.runtime import StageError, log, progress, resolve_cores
from codex_ml.shards import SPLITS, PreparedWriter

# Source bytes per batch handed to a worker: large enough that pickling is a small share of the work,
# small enough that a few batches in flight stay a few MiB.
BATCH_BYTES = 4 << 20
BATCH_DOCS = 512


def split_of(path: str, val_fraction: float, test_fraction: float) -> str:
    """The split a document belongs to, from a stable hash of its path alone: adding or removing
    other documents never moves it."""
    u = int.from_bytes(hashlib.sha256(path.encode("utf-8")).digest()[:8], "big") / 2**64
    if u < test_fraction:
        return "test"
    if u < test_fraction + val_fraction:
        return "val"
    return "train"


@dataclass(frozen=True)
class Processed:
    """One document after the per-document work, which depends on nothing but the document."""

    path: str
    rejected: str | None = None  # a source or content reason; the fields below are then unset
    digest: bytes = b""  # sha256 of the source bytes: exact duplicates
    generated: bool = False
    quality: str | None = None  # the data.quality filter it fails, when enabled
    record: dict[str, Any] = field(default_factory=dict)
    redactions: dict[str, int] = field(default_factory=dict)
    signature: np.ndarray | None = None  # MinHash of the kept text, when data.near_dedup.enabled


def process(doc: RawDocument, params: DataParams) -> Processed:
    if doc.data is None:
        return Processed(doc.path, rejected=str(doc.rejected))
    reason = reject_reason(doc.data)
    if reason is not None:
        return Processed(doc.path, rejected=reason)
    digest = hashlib.sha256(doc.data).digest()
    text = doc.data.decode("utf-8")
    generated = params.drop_generated and is_generated(text)
    q = params.quality
    quality = (quality_reason(text, q.max_line_length, q.mean_line_length, q.min_alphanumeric_fraction,
                              q.max_data_fraction) if q.enabled and not generated else None)
    counts: dict[str, int] = {}
    if params.redact_secrets and not generated:
        text, found = redact(text, doc.path, pii_too=params.redact_pii)
        counts = {k: v for k, v in found.items() if v}
    encoded = text.encode("utf-8")
    record = {"path": doc.path, "text": text, "sha256": hashlib.sha256(encoded).hexdigest(),
              "bytes": len(encoded)}
    sig = signature(text, params.near_dedup) if params.near_dedup.enabled and not generated else None
    return Processed(doc.path, digest=digest, generated=generated, quality=quality, record=record,
                     redactions=counts, signature=sig)


def process_batch(params: DataParams, docs: list[RawDocument]) -> list[Processed]:
    return [process(doc, params) for doc in docs]


def batches(docs: Iterable[RawDocument]) -> Iterator[list[RawDocument]]:
    batch: list[RawDocument] = []
    size = 0
    for doc in docs:
        batch.append(doc)
        size += len(doc.data or b"")
        if size >= BATCH_BYTES or len(batch) >= BATCH_DOCS:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def processed_in_order(params: DataParams, docs: Iterable[RawDocument], workers: int) -> Iterator[Processed]:
    """`process` over `docs`, in source order, on `workers` processes (1: in this one). At most two
    batches per worker are in flight, so memory does not grow with the corpus."""
    if workers <= 1:
        for batch in batches(docs):
            yield from process_batch(params, batch)
        return
    context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods()
                                          else "spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        yield from _ordered(pool, process_batch, params, batches(docs), 2 * workers)


def _ordered(pool: Executor, fn: Callable[[DataParams, list[RawDocument]], list[Processed]],
             params: DataParams, work: Iterator[list[RawDocument]], in_flight: int) -> Iterator[Processed]:
    window: deque[Future[list[Processed]]] = deque()
    for batch in work:
        window.append(pool.submit(fn, params, batch))
        if len(window) >= in_flight:
            yield from window.popleft().result()
    while window:
        yield from window.popleft().result()


@dataclass
class Tally:
    """What prepare counts: every number of metrics/prepare.json."""

    seen: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    redactions: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0
    near_duplicates: int = 0
    documents: Counter[str] = field(default_factory=Counter)
    bytes: Counter[str] = field(default_factory=Counter)


def processed_documents(params: DataParams) -> Iterator[Processed]:
    """Every document of the source after `process`, in source order, on `data.workers` processes."""
    return processed_in_order(params, iter_documents(params), resolve_cores(params.workers))


def processed_in(params: DataParams, scratch: Path) -> contextlib.AbstractContextManager[Iterable[Processed]]:
    """`processed_documents`, or with data.engine datatrove the same results from datatrove tasks
    (data/engine.py), whose work folder is made in `scratch` and gone on leaving the context."""
    if params.engine == "datatrove":
        from codex_ml.data.engine import processed_by_tasks  # imports datatrove: only for this engine

        return processed_by_tasks(params, scratch)
    return contextlib.nullcontext(processed_documents(params))


def kept_documents(params: DataParams, tally: Tally,
                   processed: Iterable[Processed]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(split, record) of every document kept, in source order; counts everything else in `tally`.
    The one place that decides what is kept: `prepare` and `prepare_all` both read it."""
    seen_digests: set[bytes] = set()
    near = NearDedupIndex(params.near_dedup) if params.near_dedup.enabled else None
    for p in progress(processed, desc="prepare", unit="file"):
        tally.seen += 1
        if p.rejected is not None:
            tally.rejected[p.rejected] += 1
            continue
        if p.digest in seen_digests:  # exact duplicate of an earlier document (source order)
            tally.duplicates += 1
            continue
        seen_digests.add(p.digest)
        if p.generated:
            tally.rejected["generated"] += 1
            continue
        if p.quality is not None:
            tally.rejected[p.quality] += 1
            continue
        if near is not None and p.signature is not None:
            # keyed by position too: a jsonl or hf corpus may reuse an identity for other text
            kept = near.match(f"{tally.seen}:{p.path}", p.signature)
            if kept is not None:
                tally.near_duplicates += 1
                log.debug("prepare: %s is a near-duplicate of %s", p.path, kept.split(":", 1)[1])
                continue
        tally.redactions.update(p.redactions)
        split = split_of(p.path, params.val_fraction, params.test_fraction)
        tally.documents[split] += 1
        tally.bytes[split] += p.record["bytes"]
        yield split, p.record


def metrics_of(tally: Tally, params: DataParams, shards: dict[str, int] | None = None) -> dict[str, Any]:
    metrics: dict[str, Any] = {
        "source": describe_source(params),
        "files_seen": tally.seen,
        "documents": {s: tally.documents.get(s, 0) for s in SPLITS},
        "bytes": {s: tally.bytes.get(s, 0) for s in SPLITS},
        "rejected": {r: tally.rejected.get(r, 0) for r in REJECT_REASONS},
        "duplicates": tally.duplicates,
        "near_duplicates": tally.near_duplicates,  # 0 unless data.near_dedup.enabled
        "near_dedup": params.near_dedup.enabled,
        "redactions": {k: tally.redactions.get(k, 0) for k in KINDS},
        "redact_secrets": params.redact_secrets,
        "redact_pii": params.redact_secrets and params.redact_pii,
        "drop_generated": params.drop_generated,
        "quality": params.quality.enabled,  # its rejections: rejected.{max_line_length, ..., data_file}
    }
    if shards is not None:
        metrics["shards"] = shards
    return metrics


def check_source(params: DataParams) -> None:
    if params.source in ("dir", "jsonl"):
        path = Path(str(params.path))
        if params.source == "dir" and not path.is_dir():
            raise StageError(f"data.path: {path} is not a folder (data.source is 'dir')")
        if params.source == "jsonl" and not path.is_file():
            raise StageError(f"data.path: {path} is not a file (data.source is 'jsonl')")
    elif params.source == "hf":
        from codex_ml.data.hf_source import resolve_hf  # imports datasets: only for an hf source

        resolve_hf(params)  # a folder of shards, a save_to_disk folder or a cached hub id; else one error


def _nothing_kept(params: DataParams, tally: Tally, what: str) -> StageError:
    return StageError(f"no usable documents in {what} from {describe_source(params)} "
                      f"(rejected: {dict(tally.rejected)}, duplicates: {tally.duplicates}, "
                      f"near-duplicates: {tally.near_duplicates})")


def prepare(params: DataParams, out_dir: Path, metrics_path: Path) -> dict[str, Any]:
    """Run the whole stage: `out_dir` is built aside and swapped in whole, metrics are written last."""
    check_source(params)
    tally = Tally()
    with atomic_dir(out_dir) as tmp:
        writers = {split: PreparedWriter(tmp, split, params.shard_mb << 20) for split in SPLITS}
        with processed_in(params, tmp) as processed:
            for split, record in kept_documents(params, tally, processed):
                writers[split].write(record)
        shards = {split: len(writer.close()) for split, writer in writers.items()}
        if not tally.documents["train"]:
            raise _nothing_kept(params, tally, "the train split")
    metrics = metrics_of(tally, params, shards)
    write_json(metrics_path, metrics)
    return metrics


def prepare_all(params: DataParams, out_dir: Path, split: str) -> dict[str, Any]:
    """Every usable document of the source, whatever its split, as one prepared split `split` in
    `out_dir` (shards, in source order): the same filters, dedup and redaction as the stage, for
    scoring a whole corpus (`codex eval --data`)."""
    check_source(params)
    tally = Tally()
    writer = PreparedWriter(out_dir, split, params.shard_mb << 20)
    for _, record in kept_documents(params, tally, processed_documents(params)):
        writer.write(record)
    writer.close()
    if not sum(tally.documents.values()):
        raise _nothing_kept(params, tally, "the corpus")
    return metrics_of(tally, params)
