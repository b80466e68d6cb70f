"""The prepare stage's work: source -> filtered, deduplicated, redacted documents in stable splits."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codex_ml.data.filters import REJECT_REASONS, is_generated, reject_reason
from codex_ml.data.secrets import KINDS, redact
from codex_ml.data.sources import describe_source, iter_documents
from codex_ml.io import atomic_open, sha256_bytes, write_json
from codex_ml.params import DataParams
from codex_ml.runtime import StageError, progress

SPLITS = ("train", "val", "test")


def split_of(path: str, val_fraction: float, test_fraction: float) -> str:
    """The split a document belongs to, from a stable hash of its path alone: adding or removing
    other documents never moves it."""
    u = int.from_bytes(hashlib.sha256(path.encode("utf-8")).digest()[:8], "big") / 2**64
    if u < test_fraction:
        return "test"
    if u < test_fraction + val_fraction:
        return "val"
    return "train"


@dataclass
class PrepareResult:
    records: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {s: [] for s in SPLITS})
    rejected: Counter[str] = field(default_factory=Counter)
    redactions: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0
    seen: int = 0


def collect(params: DataParams) -> PrepareResult:
    result = PrepareResult()
    seen_hashes: set[str] = set()
    for doc in progress(iter_documents(params), desc="prepare", unit="file"):
        result.seen += 1
        if doc.data is None:
            result.rejected[str(doc.rejected)] += 1
            continue
        reason = reject_reason(doc.data)
        if reason is not None:
            result.rejected[reason] += 1
            continue
        digest = sha256_bytes(doc.data)
        if digest in seen_hashes:  # exact duplicate of an earlier document (walk order is sorted)
            result.duplicates += 1
            continue
        seen_hashes.add(digest)
        text = doc.data.decode("utf-8")
        if params.drop_generated and is_generated(text):
            result.rejected["generated"] += 1
            continue
        if params.redact_secrets:
            text, counts = redact(text, doc.path, pii_too=params.redact_pii)
            result.redactions.update(counts)
        encoded = text.encode("utf-8")
        split = split_of(doc.path, params.val_fraction, params.test_fraction)
        result.records[split].append({"path": doc.path, "text": text,
                                      "sha256": sha256_bytes(encoded), "bytes": len(encoded)})
    return result


def metrics_of(result: PrepareResult, params: DataParams) -> dict[str, Any]:
    return {
        "source": describe_source(params),
        "files_seen": result.seen,
        "documents": {s: len(result.records[s]) for s in SPLITS},
        "bytes": {s: sum(r["bytes"] for r in result.records[s]) for s in SPLITS},
        "rejected": {r: result.rejected.get(r, 0) for r in REJECT_REASONS},
        "duplicates": result.duplicates,
        "redactions": {k: result.redactions.get(k, 0) for k in KINDS},
        "redact_secrets": params.redact_secrets,
        "redact_pii": params.redact_secrets and params.redact_pii,
        "drop_generated": params.drop_generated,
    }


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


def write_records(path: Path, records: list[dict[str, Any]]) -> None:
    """One prepared JSONL file, sorted by path (the order tokenize and eval read)."""
    with atomic_open(path, "w") as f:
        for r in sorted(records, key=lambda r: r["path"]):
            f.write(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n")


def prepare(params: DataParams, out_dir: Path, metrics_path: Path) -> dict[str, Any]:
    """Run the whole stage; outputs are written atomically, metrics last."""
    check_source(params)
    result = collect(params)
    if not result.records["train"]:
        raise StageError(f"no usable documents in the train split from {describe_source(params)} "
                         f"(rejected: {dict(result.rejected)}, duplicates: {result.duplicates})")
    for split in SPLITS:
        write_records(out_dir / f"{split}.jsonl", result.records[split])
    metrics = metrics_of(result, params)
    write_json(metrics_path, metrics)
    return metrics


def prepare_all(params: DataParams, out_path: Path) -> dict[str, Any]:
    """Every usable document of the source, whatever its split, in one prepared JSONL file: the same
    filters, dedup and redaction as the stage, for scoring a whole corpus (`codex eval --data`)."""
    check_source(params)
    result = collect(params)
    records = [r for split in SPLITS for r in result.records[split]]
    if not records:
        raise StageError(f"no usable documents in {describe_source(params)} "
                         f"(rejected: {dict(result.rejected)}, duplicates: {result.duplicates})")
    write_records(out_path, records)
    return metrics_of(result, params)
