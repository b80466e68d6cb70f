"""Leak audit: how much of a held-out split has a near-duplicate in train, on any prepared splits.

A held-out document leaks when its estimated Jaccard similarity with some train document reaches
`THRESHOLD` (0.7) over 5-word shingles with 128 MinHash permutations: the usual near-duplicate
measure for code (The Stack, codeparrot), at a threshold low enough to catch generated siblings such
as the stdlib's codec tables. A model scores such a document far better than new code, so a leak
flatters bits per byte. The audit's settings are fixed, not the pipeline's: it checks splits a user
brings (a dataset's own validation split) the same way as the pipeline's own, where prepare's cluster
rule (data/splits.py) makes it 0.

The held-out documents are indexed (few); the train split streams through, one signature at a time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from codex_ml.data.near_dedup import CrossIndex, signature
from codex_ml.params import NearDedupParams
from codex_ml.runtime import progress
from codex_ml.shards import iter_prepared

THRESHOLD = 0.7
AUDIT = NearDedupParams(threshold=THRESHOLD, shingle_size=5, num_perm=128, seed=1)


def leak_audit(prepared_dir: Path, splits: dict[str, list[tuple[str, str]]]) -> dict[str, dict[str, Any]]:
    """For each split of (path, text) documents: `near_duplicate_documents` (how many have a train
    near-duplicate), `bytes_fraction` (their share of the split's UTF-8 bytes), `threshold`, and
    `examples`: up to 10 of them as {path, train_path, jaccard}, highest similarity first."""
    index = CrossIndex(AUDIT, THRESHOLD)
    keys: list[tuple[str, int]] = []
    for split, docs in splits.items():
        for i, (_, text) in enumerate(docs):
            index.add(len(keys), signature(text, AUDIT))
            keys.append((split, i))
    best: dict[int, tuple[float, str]] = {}
    if len(index):
        for _, record in progress(iter_prepared(prepared_dir, "train"), desc="leak audit", unit="doc"):
            for key, j in index.matches(signature(record["text"], AUDIT)):
                if j > best.get(key, (-1.0, ""))[0]:
                    best[key] = (j, record["path"])
    out: dict[str, dict[str, Any]] = {}
    for split, docs in splits.items():
        sizes = [len(text.encode("utf-8")) for _, text in docs]
        found = sorted(((best[k][0], i) for k, (s, i) in enumerate(keys) if s == split and k in best),
                       key=lambda t: (-t[0], t[1]))
        key_of = {i: k for k, (s, i) in enumerate(keys) if s == split}
        leaked = sum(sizes[i] for _, i in found)
        out[split] = {"near_duplicate_documents": len(found),
                      "bytes_fraction": leaked / sum(sizes) if sum(sizes) else 0.0,
                      "threshold": THRESHOLD,
                      "examples": [{"path": docs[i][0], "train_path": best[key_of[i]][1],
                                    "jaccard": round(j, 4)} for j, i in found[:10]]}
    return out
