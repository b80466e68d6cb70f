"""The report's lines on held-out hygiene: what prepare removed or moved so that val and test stay
honest (decontamination, near-duplicate clusters, floors), and eval's leak audit of the splits."""

from __future__ import annotations

from typing import Any

from codex_ml.paths import DECONTAMINATED
from codex_ml.report.document import Block, Code, Note, Para, Table
from codex_ml.report.format import num, percent


def prepare_blocks(m: dict[str, Any]) -> list[Block]:
    """From metrics/prepare.json: decontamination per benchmark, cross-split moves, split floors."""
    rows: list[list[Any]] = []
    for bench, count in sorted((m.get("decontaminated") or {}).items()):
        rows.append([f"holds a {bench} problem: removed from every split", num(count)])
    if "cross_split_near_duplicates" in m:
        threshold = m.get("cross_split_threshold")
        rows.append(["near-duplicate of another split's document: moved to its split"
                     + (f" (Jaccard >= {threshold})" if threshold is not None else " (rule off)"),
                     num(m.get("cross_split_near_duplicates"))])
    for split, count in sorted((m.get("split_floor_documents") or {}).items()):
        if count:
            rows.append([f"added to {split} to meet its minimum size", num(count)])
    if not rows:
        return []
    blocks: list[Block] = [Table(["held-out hygiene", "documents"], rows, [False, True])]
    if m.get("decontaminate") == []:
        blocks.append(Note("Benchmark decontamination was off (data.decontaminate: [])."))
    elif m.get("decontaminated_bytes"):
        blocks.append(Para(["Removed documents are listed in ", Code(str(DECONTAMINATED)),
                            "."]))
    return blocks


def leak_blocks(ev: dict[str, Any], splits: list[str]) -> list[Block]:
    """From metrics/eval.json: each split's documents with a near-duplicate in train."""
    leaks = {s: ev[s].get("leak") for s in splits if isinstance(ev[s].get("leak"), dict)}
    if not leaks:
        return []
    threshold = next(iter(leaks.values())).get("threshold")
    rows = [[s, num(v.get("near_duplicate_documents")), percent(v.get("bytes_fraction"), 2),
             ", ".join(f"{e['path']} ~ {e['train_path']} ({e['jaccard']})" for e in v.get("examples", [])[:3])
             or "none"] for s, v in leaks.items()]
    return [Para([f"Leak audit: held-out documents with a near-duplicate in train (MinHash, Jaccard >= "
                  f"{threshold}). Any above 0 flatter that split's numbers."]),
            Table(["split", "documents", "bytes", "examples"], rows, [False, True, True, False])]
