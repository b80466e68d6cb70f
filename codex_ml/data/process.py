"""prepare's per-document work (filters, hashes, decontamination, redaction, MinHash), in source order
on a pool of processes: the part the local path and the datatrove tasks (prepare_tasks.py) share, one
floor below both."""

from __future__ import annotations

import hashlib
import multiprocessing
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from codex_ml.data.decontaminate import PREFILTER_SHINGLE, contamination
from codex_ml.data.documents import RawDocument
from codex_ml.data.filters import is_generated, quality_reason, reject_reason
from codex_ml.data.near_dedup import shingles, signature_of
from codex_ml.data.secrets import redact
from codex_ml.params import DataParams

# Source bytes per batch handed to a worker: large enough that pickling is a small share of the work,
# small enough that a few batches in flight stay a few MiB.
BATCH_BYTES = 4 << 20
BATCH_DOCS = 512


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
    signature: np.ndarray | None = None  # MinHash of the kept text (near-dedup, held-out clusters)
    contaminated: tuple[str, str, str] | None = None  # (benchmark, task id, rule) it holds
    license: tuple[str, str] | None = None  # RawDocument.license: a dataset's license column


def needs_signature(params: DataParams) -> bool:
    return params.near_dedup.enabled or params.held_out.near_dup_threshold is not None


def process(doc: RawDocument, params: DataParams) -> Processed:
    if doc.data is None:
        return Processed(doc.path, rejected=str(doc.rejected))
    reason = reject_reason(doc.data)
    if reason is not None:
        return Processed(doc.path, rejected=reason)
    digest = hashlib.sha256(doc.data).digest()
    text = doc.data.decode("utf-8")
    generated = params.drop_generated and is_generated(text)
    counts: dict[str, int] = {}
    if params.redact_secrets and not generated:
        text, found = redact(text, doc.path, pii_too=params.redact_pii)
        counts = {k: v for k, v in found.items() if v}
    encoded = text.encode("utf-8")
    record = {"path": doc.path, "text": text, "sha256": hashlib.sha256(encoded).hexdigest(),
              "bytes": len(encoded)}
    if generated:
        return Processed(doc.path, digest=digest, generated=True)
    q = params.quality
    if q.enabled and (failed := quality_reason(text, q.max_line_length, q.mean_line_length,
                                                q.min_alphanumeric_fraction, q.max_data_fraction)):
        return Processed(doc.path, digest=digest, quality=failed)
    # one shingle list serves both: decontamination's prefilter and the MinHash signature
    size = params.near_dedup.shingle_size
    sh = shingles(text, size) if needs_signature(params) or params.decontaminate else []
    holds = contamination(text, tuple(params.decontaminate), sh if size == PREFILTER_SHINGLE else None)
    if holds is not None:
        return Processed(doc.path, digest=digest, record=record, contaminated=holds)
    sig = signature_of(sh, params.near_dedup) if needs_signature(params) else None
    return Processed(doc.path, digest=digest, record=record, redactions=counts, signature=sig,
                     license=doc.license)


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
