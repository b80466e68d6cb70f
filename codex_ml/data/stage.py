"""The prepare stage's work: source -> filtered, deduplicated, redacted documents in stable splits.

It streams: documents are read in source order, cut into batches, and each batch's per-document work
(content filters, hashes, the generated-file check, redaction) runs in `data.workers` processes. One
process then takes the results back in source order and decides what is kept (exact duplicates by
content hash, then near duplicates by MinHash LSH when `data.near_dedup.enabled`, in that order) and
where it goes, writing each split's shards as it goes
(codex_ml/shards.py). Memory holds a few batches plus one hash per kept document, whatever the corpus
size, and the outputs are the same bytes for any number of workers: which documents are kept depends
only on the order of the results, never on which process made them. With `data.engine: datatrove` the
per-document work runs as datatrove tasks instead, here or on a cluster (data/prepare_tasks.py), and the
same one process reads their results in source order.
"""

from __future__ import annotations

import contextlib
import json
import pickle
import shutil
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from codex_ml.cards.dataset import Provenance, dataset_card
from codex_ml.data.documents import Source
from codex_ml.data.filters import REJECT_REASONS
from codex_ml.data.licenses import DETECTOR, DocumentLicenses, LicenseError, LicenseFilter, parse_filter
from codex_ml.data.near_dedup import NearDedupIndex
from codex_ml.data.process import BATCH_DOCS, Processed, processed_in_order
from codex_ml.data.secrets import KINDS
from codex_ml.data.sources import open_source
from codex_ml.data.splits import SPLIT_CODES, assign, hash_unit, split_of
from codex_ml.io import atomic_dir, write_json, write_text
from codex_ml.params import DataParams
from codex_ml.paths import DECONTAMINATED, HELD_OUT, PREPARED_CARD, SPLITS
from codex_ml.runtime import StageError, log, progress, resolve_cores
from codex_ml.shards import PreparedWriter


@dataclass
class Tally:
    """What prepare counts: every number of metrics/prepare.json."""

    seen: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    redactions: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0
    near_duplicates: int = 0
    decontaminated: Counter[str] = field(default_factory=Counter)  # per benchmark
    removed: list[dict[str, Any]] = field(default_factory=list)  # the decontaminated documents
    cross_split: int = 0  # documents data/splits.py moved to keep a near-duplicate cluster together
    cross_split_bytes: int = 0
    floor_documents: dict[str, int] = field(default_factory=dict)
    documents: Counter[str] = field(default_factory=Counter)
    bytes: Counter[str] = field(default_factory=Counter)
    licenses: Counter[str] = field(default_factory=Counter)  # kept documents per license expression
    license_dropped: Counter[str] = field(default_factory=Counter)  # by data.license_filter, per license


def processed_documents(params: DataParams, source: Source) -> Iterator[Processed]:
    """Every document of the source after `process`, in source order, on `data.workers` processes."""
    return processed_in_order(params, source.documents(), resolve_cores(params.workers))


def processed_in(params: DataParams, source: Source,
                 scratch: Path) -> contextlib.AbstractContextManager[Iterable[Processed]]:
    """`processed_documents`, or with data.engine datatrove the same results from datatrove tasks
    (data/prepare_tasks.py: each opens the source in its own process), whose work folder is made in
    `scratch` and gone on leaving the context."""
    if params.engine == "datatrove":
        from codex_ml.data.prepare_tasks import processed_by_tasks  # imports datatrove: only for this engine

        return processed_by_tasks(params, scratch)
    return contextlib.nullcontext(processed_documents(params, source))


def kept_documents(params: DataParams, tally: Tally, processed: Iterable[Processed],
                   source: Source) -> Iterator[Processed]:
    """Every document kept, in source order, its record with its `license` and `license_source`;
    counts everything else in `tally`. The one place that decides what is kept: `prepare` and
    `prepare_all` both read it."""
    keep = license_filter(params)
    licenses = DocumentLicenses(source.license_root())
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
        if p.contaminated is not None:
            benchmark, task, rule = p.contaminated
            tally.decontaminated[benchmark] += 1
            tally.removed.append({"path": p.path, "benchmark": benchmark, "task_id": task, "rule": rule,
                                  "bytes": p.record["bytes"],
                                  "split": split_of(p.path, params.val_fraction, params.test_fraction)})
            continue
        found = licenses.of(p.path, p.record["text"], p.license)
        if not keep.keeps(found.expression):
            tally.license_dropped[found.expression] += 1
            continue
        if near is not None and p.signature is not None:
            # keyed by position too: a jsonl or hf corpus may reuse an identity for other text
            kept = near.match(f"{tally.seen}:{p.path}", p.signature)
            if kept is not None:
                tally.near_duplicates += 1
                log.debug("prepare: %s is a near-duplicate of %s", p.path, kept.split(":", 1)[1])
                continue
        tally.redactions.update(p.redactions)
        tally.licenses[found.expression] += 1
        p.record.update(license=found.expression, license_source=found.source)
        yield p


class Spool:
    """The kept documents, in source order, in files of the output folder until their splits are
    known: records as pickled batches, signatures as one uint32 array; in memory, per document, its
    path-hash unit and byte count."""

    def __init__(self, folder: Path, num_perm: int) -> None:
        folder.mkdir()
        self.folder, self.num_perm = folder, num_perm
        self.units: list[float] = []
        self.nbytes: list[int] = []
        self._records = open(folder / "records.pickle", "wb")  # noqa: SIM115
        self._sigs = open(folder / "signatures.u32", "wb")  # noqa: SIM115
        self._batch: list[dict[str, Any]] = []
        self._signatures: np.ndarray | None = None

    def add(self, p: Processed) -> None:
        self.units.append(hash_unit(p.path))
        self.nbytes.append(p.record["bytes"])
        self._batch.append(p.record)
        if len(self._batch) >= BATCH_DOCS:
            self._flush()
        if p.signature is not None:
            self._sigs.write(p.signature.astype(np.uint32).tobytes())

    def _flush(self) -> None:
        pickle.dump(self._batch, self._records, protocol=pickle.HIGHEST_PROTOCOL)
        self._batch = []

    def close(self) -> None:
        self._flush()
        self._records.close()
        self._sigs.close()

    def signature(self, i: int) -> np.ndarray:
        if self._signatures is None:
            path = self.folder / "signatures.u32"
            self._signatures = np.memmap(path, dtype=np.uint32, mode="r").reshape(-1, self.num_perm)
        return np.asarray(self._signatures[i])

    def records(self) -> Iterator[dict[str, Any]]:
        with open(self.folder / "records.pickle", "rb") as f:  # written by this run, in its own folder
            while True:
                try:
                    yield from pickle.load(f)
                except EOFError:
                    return

    def remove(self) -> None:
        self._signatures = None
        shutil.rmtree(self.folder)


def metrics_of(tally: Tally, params: DataParams, source: Source,
               shards: dict[str, int] | None = None) -> dict[str, Any]:
    metrics: dict[str, Any] = {
        "source": source.describe(),
        "files_seen": tally.seen,
        "documents": {s: tally.documents.get(s, 0) for s in SPLITS},
        "bytes": {s: tally.bytes.get(s, 0) for s in SPLITS},
        "rejected": {r: tally.rejected.get(r, 0) for r in REJECT_REASONS},
        "duplicates": tally.duplicates,
        "near_duplicates": tally.near_duplicates,  # 0 unless data.near_dedup.enabled
        "near_dedup": params.near_dedup.enabled,
        "decontaminated": {b: tally.decontaminated.get(b, 0) for b in params.decontaminate},
        "decontaminated_bytes": sum(r["bytes"] for r in tally.removed),
        "decontaminate": list(params.decontaminate),
        "cross_split_near_duplicates": tally.cross_split,
        "cross_split_near_duplicate_bytes": tally.cross_split_bytes,
        "cross_split_threshold": params.held_out.near_dup_threshold,  # null: the rule is off
        "split_floor_documents": {s: tally.floor_documents.get(s, 0) for s in HELD_OUT},
        "redactions": {k: tally.redactions.get(k, 0) for k in KINDS},
        "redact_secrets": params.redact_secrets,
        "redact_pii": params.redact_secrets and params.redact_pii,
        "drop_generated": params.drop_generated,
        "quality": params.quality.enabled,  # its rejections: rejected.{max_line_length, ..., data_file}
        "licenses": dict(sorted(tally.licenses.items())),  # kept documents per license
        "license_dropped": dict(sorted(tally.license_dropped.items())),  # per license, by the filter
        "license_filter": params.license_filter,
        "license_detector": DETECTOR,
    }
    if shards is not None:
        metrics["shards"] = shards
    return metrics


def license_filter(params: DataParams) -> LicenseFilter:
    """`data.license_filter` parsed; a malformed value is one StageError naming the key and the entry."""
    try:
        return parse_filter(params.license_filter)
    except LicenseError as exc:
        raise StageError(str(exc)) from None


def _nothing_kept(source: Source, tally: Tally, what: str) -> StageError:
    return StageError(f"no usable documents in {what} from {source.describe()} "
                      f"(rejected: {dict(tally.rejected)}, duplicates: {tally.duplicates}, "
                      f"near-duplicates: {tally.near_duplicates})")


def prepare(params: DataParams, out_dir: Path, metrics_path: Path) -> dict[str, Any]:
    """Run the whole stage: `out_dir` is built aside and swapped in whole, metrics are written last."""
    license_filter(params)  # a malformed filter stops the stage before the source is opened
    source = open_source(params)
    tally = Tally()
    with atomic_dir(out_dir) as tmp:
        spool = Spool(tmp / ".spool", params.near_dedup.num_perm)
        with processed_in(params, source, tmp) as processed:
            for p in kept_documents(params, tally, processed, source):
                spool.add(p)
        spool.close()
        units, nbytes = np.asarray(spool.units, dtype=np.float64), np.asarray(spool.nbytes, dtype=np.int64)
        split = assign(units, nbytes, spool.signature, params)
        names = {code: name for name, code in SPLIT_CODES.items()}
        writers = {name: PreparedWriter(tmp, name, params.shard_mb << 20) for name in SPLITS}
        moved = set(split.moved)
        for i, record in enumerate(spool.records()):
            name = names[int(split.codes[i])]
            writers[name].write(record)
            tally.documents[name] += 1
            tally.bytes[name] += record["bytes"]
            if i in moved:
                log.info("prepare: %s goes to %s with its near-duplicates", record["path"], name)
        spool.remove()
        shards = {name: len(writer.close()) for name, writer in writers.items()}
        tally.cross_split = len(moved)
        tally.cross_split_bytes = int(nbytes[split.moved].sum()) if split.moved else 0
        tally.floor_documents = split.floor_documents
        with open(tmp / DECONTAMINATED.name, "w", encoding="utf-8", newline="\n") as f:
            f.writelines(json.dumps(r, sort_keys=True) + "\n" for r in tally.removed)
        if not tally.documents["train"]:
            raise _nothing_kept(source, tally, "the train split")
        metrics = metrics_of(tally, params, source, shards)
        write_card(tmp, metrics, params)
    write_json(metrics_path, metrics)
    return metrics


# data.* that are not in the card: where the corpus is on this machine (the card names it by its
# folder's or file's name) and where the work runs, which the outputs never depend on
NOT_IN_CARD = frozenset({"path", "workers", "engine", "tasks", "executor", "slurm", "ray"})


def write_card(folder: Path, metrics: dict[str, Any], params: DataParams) -> None:
    """The dataset card `folder`/README.md from the stage's own metrics and the params that decide
    the data (the same bytes for any worker count, engine or executor)."""
    shown = params.model_dump(mode="json", exclude=set(NOT_IN_CARD))
    card = dataset_card(folder, metrics, Provenance(None, False, {"data": shown}))
    write_text(folder / PREPARED_CARD.name, str(card))


def prepare_all(params: DataParams, out_dir: Path, split: str) -> dict[str, Any]:
    """Every usable document of the source, whatever its split, as one prepared split `split` in
    `out_dir` (shards, in source order): the same filters, dedup and redaction as the stage, for
    scoring a whole corpus (`codex eval --data`)."""
    source = open_source(params)
    tally = Tally()
    writer = PreparedWriter(out_dir, split, params.shard_mb << 20)
    license_filter(params)
    for p in kept_documents(params, tally, processed_documents(params, source), source):
        writer.write(p.record)
        tally.documents[split] += 1
        tally.bytes[split] += p.record["bytes"]
    writer.close()
    if not sum(tally.documents.values()):
        raise _nothing_kept(source, tally, "the corpus")
    return metrics_of(tally, params, source)
