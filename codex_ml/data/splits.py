"""Which split each kept document goes to: a stable hash of its path, minimum sizes for val and test,
and near-duplicate clusters kept in one split (docs/scaling.md, "Splits").

1. Path hash: each document gets u in [0, 1) from the SHA-256 of its path; u < test_fraction is test,
   u < test_fraction + val_fraction is val, the rest train. Adding or removing a document never
   moves another one, as long as 2. and 3. change nothing.
2. Floors (`data.held_out.min_documents`, `min_bytes`): when test (then val) holds fewer documents or
   bytes than that, it takes the next documents in u order. A corpus whose train would then keep less
   than half of its documents or bytes is refused: too small for held-out numbers that mean anything.
3. Clusters (`data.held_out.near_dup_threshold`): a val or test document whose estimated Jaccard
   similarity with a document of another split reaches the threshold joins it; a cluster linked this
   way goes to train if any member's own split is train, else to val. The held-out documents are
   indexed (few), every document queries them (near_dedup.CrossIndex), and the signatures stream from
   a file: memory grows with val and test, not with the corpus. When 3. takes a document out of a
   split whose floor then fails, 2. runs again without it (a few passes at most).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from codex_ml.data.near_dedup import CrossIndex
from codex_ml.params import DataParams
from codex_ml.paths import SPLITS
from codex_ml.runtime import StageError

SPLIT_CODES = {name: code for code, name in enumerate(SPLITS)}  # train 0, val 1, test 2: a cluster goes
# to its members' smallest code
MAX_PASSES = 8


def hash_unit(path: str) -> float:
    """u in [0, 1) from the path alone."""
    return int.from_bytes(hashlib.sha256(path.encode("utf-8")).digest()[:8], "big") / 2**64


def split_of(path: str, val_fraction: float, test_fraction: float) -> str:
    """The split by path hash alone (1. above)."""
    u = hash_unit(path)
    if u < test_fraction:
        return "test"
    if u < test_fraction + val_fraction:
        return "val"
    return "train"


@dataclass
class Assignment:
    codes: np.ndarray  # int8 per document, SPLIT_CODES
    floor_documents: dict[str, int] = field(default_factory=dict)  # beyond its hash share, per split
    moved: list[int] = field(default_factory=list)  # documents 3. took out of their split


def _floors(units: np.ndarray, nbytes: np.ndarray, params: DataParams,
            pinned: np.ndarray) -> tuple[np.ndarray, dict[str, int]]:
    """1. and 2.: codes by u, with the floors met from the next documents in u order; `pinned`
    documents stay in train."""
    n = len(units)
    codes = np.zeros(n, dtype=np.int8)
    free = np.flatnonzero(~pinned)
    order = free[np.lexsort((free, units[free]))]  # by u, then source order: ties are stable
    cum = np.concatenate([[0], np.cumsum(nbytes[order], dtype=np.int64)])
    floors = params.held_out
    units_sorted = units[order]
    pos, lo, extra, bound = 0, 0.0, {}, False
    for split, fraction in (("test", params.test_fraction), ("val", params.val_fraction)):
        hi = lo + fraction
        end = int(np.searchsorted(units_sorted, hi, "left"))
        by_hash = end - int(np.searchsorted(units_sorted, lo, "left"))  # its documents by 1. alone
        take = max(0, end - pos)  # what test's floor left of its hash interval
        if fraction > 0:
            take = max(take, floors.min_documents)
            if floors.min_bytes:  # the fewest documents from pos whose bytes reach the floor
                take = max(take, int(np.searchsorted(cum, cum[pos] + floors.min_bytes, "left")) - pos)
        if pos + take > len(order):
            raise _too_small(params, n, int(nbytes.sum()), "val and test would take every document")
        codes[order[pos:pos + take]] = SPLIT_CODES[split]
        bound = bound or take > max(0, end - pos)
        extra[split] = max(0, take - by_hash)
        pos, lo = pos + take, hi
    if bound:
        train = codes == 0
        if 2 * int(train.sum()) < n or 2 * int(nbytes[train].sum()) < int(nbytes.sum()):
            kept = f"train would keep {int(train.sum())} documents, {int(nbytes[train].sum()):,} bytes"
            raise _too_small(params, n, int(nbytes.sum()), kept)
    return codes, extra


def _too_small(params: DataParams, n: int, total: int, why: str) -> StageError:
    f = params.held_out
    return StageError(
        f"data: the corpus is too small for meaningful val and test splits: {n} documents, {total:,} bytes "
        f"kept, and val and test each need at least {f.min_documents} documents and {f.min_bytes:,} bytes "
        f"(data.held_out.min_documents, data.held_out.min_bytes) while train keeps at least half; {why}. "
        "Add documents, or lower those keys (0: val_fraction and test_fraction alone)")


def _clusters(codes: np.ndarray, signature: Callable[[int], np.ndarray], params: DataParams) -> np.ndarray:
    """3.: every cluster linked through a val or test document, in its members' smallest split."""
    threshold = params.held_out.near_dup_threshold
    held = np.flatnonzero(codes != 0)
    if threshold is None or not len(held):
        return codes
    index = CrossIndex(params.near_dedup, threshold)
    for h in held.tolist():
        index.add(h, signature(h))
    parent: dict[int, int] = {}

    def root(i: int) -> int:
        parent.setdefault(i, i)
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for j in range(len(codes)):
        for i, _ in index.matches(signature(j)):
            if i != j:
                a, b = root(i), root(j)
                parent[max(a, b)] = min(a, b)
    target: dict[int, int] = {}
    for i in parent:
        r = root(i)
        target[r] = min(target.get(r, 2), int(codes[i]))
    out = codes.copy()
    for i in parent:
        out[i] = target[root(i)]
    return out


def assign(units: np.ndarray, nbytes: np.ndarray, signature: Callable[[int], np.ndarray],
           params: DataParams) -> Assignment:
    """Every document's split (1.-3. above); `signature(i)` is document i's MinHash signature."""
    pinned = np.zeros(len(units), dtype=bool)
    for _ in range(MAX_PASSES):
        codes, extra = _floors(units, nbytes, params, pinned)
        final = _clusters(codes, signature, params)
        moved = np.flatnonzero(final != codes)
        out_of_held = moved[final[moved] == 0]
        if not _short(final, nbytes, params) or not len(out_of_held):
            return Assignment(final, extra, [int(i) for i in moved])
        pinned[out_of_held] = True  # they belong with train: the floors look past them
    raise _too_small(params, len(units), int(nbytes.sum()),
                     "near-duplicates of train keep taking val and test documents")


def _short(codes: np.ndarray, nbytes: np.ndarray, params: DataParams) -> bool:
    """Whether val or test (with a fraction) misses its floor."""
    f = params.held_out
    for split, fraction in (("test", params.test_fraction), ("val", params.val_fraction)):
        mask = codes == SPLIT_CODES[split]
        if fraction > 0 and (int(mask.sum()) < f.min_documents or int(nbytes[mask].sum()) < f.min_bytes):
            return True
    return False
