"""The dataset card of a prepared folder (`data/prepared/README.md`), built with huggingface_hub's
DatasetCard and DatasetCardData from prepare's own counts: never a number prepare did not write.

The YAML header is what the Hub and `datasets` read: license, language, size category, source, the
splits with their documents and bytes (`dataset_info`), and `configs` naming each split's shard files,
so `datasets.load_dataset("data/prepared")` gives the three splits. The body tells the pipeline's
account: what every filter, dedup, held-out rule and redaction kind did, the licenses, and how to make
the same bytes again. The same inputs give the same bytes: no clock, no machine path, sorted tables.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from huggingface_hub import DatasetCard, DatasetCardData

from codex_ml.cards.words import (
    REJECTED,
    UNKNOWN,
    count,
    license_fields,
    mib,
    redaction_words,
    size_category,
)

SPLITS = ("train", "val", "test")
DTYPES = {str: "string", int: "int64", float: "float64", bool: "bool"}


@dataclass(frozen=True)
class Provenance:
    """Where a card's numbers came from: the code's commit, the params that made them, the data."""

    commit: str | None  # None outside git or before the first commit
    dirty: bool = False  # uncommitted changes when the stage ran
    params: dict[str, Any] = field(default_factory=dict)  # the params section(s), as params.yaml has them
    data_hash: str | None = None  # DVC's md5 of the data folder (the model card: from dvc.lock)


def shard_files(folder: Path) -> list[Path]:
    return sorted(p for s in SPLITS for p in folder.glob(f"{s}-*.jsonl"))


def features(folder: Path) -> list[dict[str, str]]:
    """The columns of the prepared records, from the first record of the first non-empty shard."""
    for shard in shard_files(folder):
        with open(shard, encoding="utf-8") as f:
            line = f.readline()
        if line.strip():
            record = json.loads(line)
            return [{"name": k, "dtype": DTYPES.get(type(v), "string")} for k, v in record.items()]
    return []


def describe(source: dict[str, Any]) -> tuple[str, list[str]]:
    """The corpus in words (no machine path: a folder by its name, a dataset by its id) and the Hub
    `source_datasets` it came from."""
    kind = source.get("kind")
    if kind == "stdlib":
        python, implementation = source.get("python", "?"), source.get("implementation", "?")
        return f"the Python {python} standard library ({implementation}), its own source files", []
    if kind == "hf":
        ident = str(source.get("id") or source.get("path") or "a Hugging Face dataset")
        return f"the Hugging Face dataset {ident}", [ident] if source.get("id") else []
    name = Path(str(source.get("path", ""))).name or "a corpus"
    return (f"the folder {name}" if kind == "dir" else f"the JSONL file {name}"), []


def licenses_of(metrics: dict[str, Any]) -> dict[str, int]:
    """Documents kept per license, most first (ties by name), from prepare's `licenses` counts."""
    found = metrics.get("licenses")
    if not isinstance(found, dict):
        return {}
    return dict(sorted(((str(k), int(v)) for k, v in found.items()), key=lambda kv: (-kv[1], kv[0])))


def card_data(folder: Path, metrics: dict[str, Any], provenance: Provenance, name: str) -> DatasetCardData:
    docs = {s: int(metrics["documents"][s]) for s in SPLITS}
    nbytes = {s: int(metrics["bytes"][s]) for s in SPLITS}
    _, sources = describe(metrics.get("source", {}))
    licenses = licenses_of(metrics)
    return DatasetCardData(
        pretty_name=name,
        **license_fields(list(licenses) or [UNKNOWN]),
        language=["code"],
        size_categories=[size_category(sum(docs.values()))],
        source_datasets=sources,
        task_categories=["text-generation"],
        tags=["code", "codex-ml"],
        configs=[{"config_name": "default",
                  "data_files": [{"split": s, "path": f"{s}-*.jsonl"} for s in SPLITS]}],
        dataset_info={"features": features(folder),
                      "splits": [{"name": s, "num_bytes": nbytes[s], "num_examples": docs[s]}
                                 for s in SPLITS],
                      "dataset_size": sum(nbytes.values())},
        codex_ml={"licenses": licenses, "license_detector": metrics.get("license_detector"),
                  # a card inside the stage's output names no commit: dvc.lock's commit is its
                  **({"commit": provenance.commit, "dirty": provenance.dirty} if provenance.commit else {})},
    )


def dataset_card(folder: Path, metrics: dict[str, Any], provenance: Provenance,
                 name: str = "codex-ml prepared corpus") -> DatasetCard:
    """The card of the prepared folder `folder` (its shards written), from prepare's `metrics`."""
    data = card_data(folder, metrics, provenance, name)
    what, _ = describe(metrics.get("source", {}))
    body = [f"# {name}", "",
            f"Source code from {what}, prepared by codex-ml's prepare stage: filtered, deduplicated, "
            "redacted and split by a hash of each document's path. One JSON object a line per document "
            "(`path`, `text`, and the columns below); bytes are UTF-8 bytes of text.", "",
            *splits_table(metrics), *account(metrics), *licenses_table(metrics), *reproduce(provenance)]
    return DatasetCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(body).rstrip() + "\n")


def splits_table(metrics: dict[str, Any]) -> list[str]:
    shards = metrics.get("shards", {})
    rows = [f"| {s} | {metrics['documents'][s]:,} | {metrics['bytes'][s]:,} | {shards.get(s, '?')} |"
            for s in SPLITS]
    return ["## Splits", "", "| split | documents | bytes | shards |", "|---|---|---|---|", *rows, ""]


def account(metrics: dict[str, Any]) -> list[str]:
    """What prepare did, in words: every step that dropped, moved or changed something, the rest in
    one line."""
    steps = [*dropped(metrics), *held_out(metrics), *changed(metrics)]
    return ["## How it was made", "",
            f"prepare read {count(int(metrics.get('files_seen', 0)), 'file')} of the source.",
            *(f"- {line}" for line in steps), ""]


def dropped(metrics: dict[str, Any]) -> list[str]:
    """The filters, dedup and the license filter: each that dropped something, one line each; the
    reasons that dropped nothing in one line, last."""
    lines, quiet = [], []
    dropped_bytes = metrics.get("rejected_bytes", {})
    for reason, n in sorted((k, int(v)) for k, v in metrics.get("rejected", {}).items()):
        if not n:
            quiet.append(REJECTED.get(reason, reason))
            continue
        size = f" ({mib(int(dropped_bytes[reason]))})" if reason in dropped_bytes else ""
        lines.append(f"dropped {count(n, 'document')}{size}: {REJECTED.get(reason, reason)}")
    lines.append(f"dropped {count(int(metrics.get('duplicates', 0)), 'exact duplicate')} (the same bytes "
                 "as an earlier document)")
    if metrics.get("near_dedup"):
        lines.append(f"dropped {count(int(metrics.get('near_duplicates', 0)), 'near-duplicate')} "
                     "(MinHash LSH, data.near_dedup)")
    for expression, n in sorted(metrics.get("license_dropped", {}).items()):
        lines.append(f"dropped {count(int(n), 'document')} under {expression} "
                     f"(data.license_filter: {metrics.get('license_filter')})")
    if quiet:
        lines.append(f"none dropped as: {'; '.join(quiet)}")
    return lines


def held_out(metrics: dict[str, Any]) -> list[str]:
    """Benchmark decontamination, near-copies kept in one split, the held-out floors."""
    lines = [f"removed {count(int(n), 'document')} holding a {bench} problem (decontaminated.ndjson lists "
             "them)" for bench, n in sorted(metrics.get("decontaminated", {}).items())]
    moved = int(metrics.get("cross_split_near_duplicates", 0))
    if moved:
        lines.append(f"moved {count(moved, 'val or test document')} "
                     f"({mib(int(metrics.get('cross_split_near_duplicate_bytes', 0)))}) into the split of "
                     f"a near-copy (similarity >= {metrics['cross_split_threshold']}), so no cluster "
                     "straddles splits")
    elif metrics.get("cross_split_threshold") is not None:
        lines.append("none moved to the split of a near-copy "
                     f"(similarity >= {metrics['cross_split_threshold']})")
    for split, n in sorted(metrics.get("split_floor_documents", {}).items()):
        if n:
            lines.append(f"moved {count(int(n), 'document')} into {split} to reach data.held_out's floor")
    return lines


def changed(metrics: dict[str, Any]) -> list[str]:
    """Redaction: what was replaced, by kind, most first."""
    redactions = {k: int(v) for k, v in metrics.get("redactions", {}).items() if v}
    if redactions:
        done = ", ".join(f"{n:,} {redaction_words(k)}" for k, n in sorted(redactions.items(),
                                                                         key=lambda kv: (-kv[1], kv[0])))
        return [f"redacted {done}"]
    if not metrics.get("redact_secrets", True):
        return ["redacted nothing: secret and PII redaction was off (data.redact_secrets)"]
    return ["redacted nothing: no secret or personal data was found"]


def licenses_table(metrics: dict[str, Any]) -> list[str]:
    licenses = licenses_of(metrics)
    if not licenses:
        return ["## Licenses", "", "prepare recorded no license per document for this corpus.", ""]
    detector = metrics.get("license_detector")
    how = (" found from SPDX-License-Identifier headers, the nearest LICENSE/COPYING/NOTICE file, a "
           f"package's METADATA or the dataset's own columns (license files read by {detector})")
    rows = [f"| {expression} | {n:,} |" for expression, n in licenses.items()]
    return ["## Licenses", "", f"Documents kept per license,{how}; `unknown` where none was found. Each "
            "document keeps its license in the `license` column: its terms still apply to it.", "",
            "| license | documents |", "|---|---|", *rows, ""]


def reproduce(provenance: Provenance) -> list[str]:
    """The params, and where the commit and the data's hash are: a card written inside the stage's own
    output names neither (the folder would change with every commit, its inputs unchanged, and cannot
    hold its own hash): the commit is the one whose dvc.lock records this folder, and that entry's md5 is
    DVC's hash of these files (`dvc status prepare` checks them against it)."""
    if provenance.commit:
        dirty = ", with uncommitted changes" if provenance.dirty else ""
        code = f"Code at commit `{provenance.commit}`{dirty}"
    else:
        code = "Code at the commit whose dvc.lock records this folder"
    data = (f"DVC's md5 of the folder: `{provenance.data_hash}`" if provenance.data_hash else
            "DVC's md5 of the folder is the one that dvc.lock records for it (`dvc status prepare` checks "
            "these files against it)")
    lines = ["## Reproduce", "", f"{code}; `dvc repro prepare` with these params makes the same bytes. "
             f"{data}.", "", "```yaml", *yaml.safe_dump(provenance.params, sort_keys=True).splitlines()]
    return [*lines, "```", ""]
