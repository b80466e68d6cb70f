"""Near-duplicate removal: MinHash LSH over word shingles, with datasketch (docs/scaling.md).

Exact dedup (prepare's content hash) misses a file copied with a changed header, a renamed variable or
a vendored copy one release behind. These are found as The Stack, codeparrot and text-dedup find them:

1. Words: maximal runs of ASCII letters, digits and underscores, or of non-ASCII characters; all else
   separates. On ASCII code these are exactly the `[A-Za-z_0-9]+` tokens of BigCode's near-dedup
   (without the empty tokens its `re.split` leaves between two separators); non-ASCII text (comments,
   strings in other scripts) counts as words instead of vanishing. Case is kept (code is
   case-sensitive); whitespace, punctuation and operators are not words, so reindenting or
   reformatting a file does not make it new.
2. Shingles: every run of `shingle_size` consecutive words, joined by a space. A document with fewer
   words than that is one shingle of all its words; a document with no word at all has no shingle.
3. `signature()`: the datasketch MinHash of the shingle set (`num_perm` permutations drawn from
   `seed` as datasketch draws them, scheme "affine32"), computed in numpy by `signature_of`. Each shingle is
   hashed with zlib's CRC-32 rather than datasketch's default SHA-1: faster, and as accurate because
   affine32 passes every input hash through MurmurHash3's finalizer (docs/scaling.md has the
   measurement). Pure and picklable: run it in worker processes.
4. `NearDedupIndex.match()`: documents are fed one at a time, in source order, in one process.
   datasketch's MinHashLSH gives candidates; each is confirmed by its MinHash Jaccard estimate, and
   the earliest-kept candidate at or above `threshold` is returned. A document that matches nothing
   is kept and inserted; a matched one is not, so documents are compared with kept ones only and the
   result depends on the order alone, never on timing or the number of workers.

What it cannot do: LSH misses a few pairs above the threshold, and the estimate has a standard error
of sqrt(J (1 - J) / num_perm), so pairs near the threshold go either way, but always the same way for
the same params (docs/scaling.md gives the numbers).

datasketch is imported inside the functions: its package imports scipy (for MinHashLSH's band
tuning), about a second that a prepare run with near-dedup off should not pay.
"""

from __future__ import annotations

import re
import zlib
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np

from codex_ml.params import NearDedupParams

if TYPE_CHECKING:
    from collections.abc import Iterable

SCHEME = "affine32"  # explicit, so a datasketch release with another default cannot change signatures
# A word (see 1. above), matched in the UTF-8 bytes: `\w` on bytes is ASCII-only, and any byte of a
# non-ASCII character is >= 0x80. Matching the encoded text saves encoding every shingle.
_WORD = re.compile(rb"[\w\x80-\xff]+")
# MinHashLSH's band tuning weighs (false positives, false negatives). Its default, (0.5, 0.5), suits
# LSH used alone; here every candidate is confirmed by its Jaccard estimate (2 us), so a false
# positive costs next to nothing and a false negative is a duplicate kept: at threshold 0.85 the
# default bands (8 x 16) make only 46% of pairs at J = 0.85 candidates, these (11 x 11) 87%.
LSH_WEIGHTS = (0.1, 0.9)
_EMPTY = 0xFFFF_FFFF  # affine32's value for "no shingle" (np.iinfo(np.uint32).max)
_BATCH = 2_048  # shingles permuted at once: a (num_perm x batch) uint32 array of 1 MiB at 128


def words(text: str) -> list[bytes]:
    """The document's words, UTF-8 encoded, in order."""
    return _WORD.findall(text.encode("utf-8"))


def shingles(text: str, shingle_size: int) -> list[bytes]:
    """The document's shingles, in order and with repeats (MinHash sees a set either way)."""
    w = words(text)
    if len(w) < shingle_size:
        return [b" ".join(w)] if w else []
    # zip stops at the shortest slice, w[shingle_size - 1:]: the last full shingle
    return list(map(b" ".join, zip(*(w[i:] for i in range(shingle_size)), strict=False)))


@lru_cache(maxsize=8)
def _permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The affine32 permutations h -> a * h + b (mod 2^32) for (num_perm, seed), drawn as datasketch's
    MinHash draws them (an odd `a`, so each is a bijection): the same arrays, without importing
    datasketch, whose import (scipy with it) costs each of prepare's workers about half a CPU second."""
    gen = np.random.RandomState(seed)
    a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    return a, b


def signature(text: str, params: NearDedupParams) -> np.ndarray:
    """The MinHash signature of `text`'s shingles: `params.num_perm` uint32 values, the same bytes on
    every machine and in every process. A text with no word gives all-max values (an empty set)."""
    return signature_of(shingles(text, params.shingle_size), params)


def signature_of(values: list[bytes], params: NearDedupParams) -> np.ndarray:
    """`signature` from the text's shingles, for a caller that needs them too (decontamination).

    datasketch's affine32 MinHash, computed here: each distinct shingle's CRC-32 goes through
    MurmurHash3's 32-bit finalizer, then every permutation (a, b) maps it to a * h + b modulo 2^32, and
    the signature is each permutation's minimum. The same values as datasketch's
    `MinHash.update_batch` and the same permutations (tests/test_near_dedup.py holds both equal), in
    less time: the hashes are taken with `np.fromiter` instead of a list, and the arithmetic runs in
    place on (permutations x batch) arrays (benchmarks/bench_near_dedup.py times both; docs/scaling.md,
    "Near-duplicate removal", has the figures)."""
    a, b = _permutations(params.num_perm, params.seed)
    distinct = set(values)  # a minimum over a set: repeats (15% of code's shingles) only cost time
    h = np.fromiter(map(zlib.crc32, distinct), dtype=np.uint32, count=len(distinct))
    out = np.full(params.num_perm, _EMPTY, dtype=np.uint32)
    if not len(h):
        return out
    h ^= h >> np.uint32(16)  # MurmurHash3's fmix32, as datasketch's affine32 scheme applies it
    h *= np.uint32(0x85EBCA6B)
    h ^= h >> np.uint32(13)
    h *= np.uint32(0xC2B2AE35)
    h ^= h >> np.uint32(16)
    a, b = a.reshape(-1, 1), b.reshape(-1, 1)
    for start in range(0, len(h), _BATCH):
        permuted = a * h[start:start + _BATCH]  # uint32: wraps modulo 2^32, as the scheme means
        permuted += b
        np.minimum(out, permuted.min(axis=1), out=out)
    return out


def lean(sig: np.ndarray, params: NearDedupParams) -> Any:
    """`sig` as datasketch's LeanMinHash, for its LSH index and Jaccard estimate."""
    from datasketch import LeanMinHash

    return LeanMinHash(seed=params.seed, hashvalues=sig, scheme=SCHEME)


def is_empty(sig: np.ndarray) -> bool:
    """A signature of no shingle at all (a document without a word)."""
    return int(sig.min()) == _EMPTY


@lru_cache(maxsize=8)
def lsh_bands(threshold: float, num_perm: int, weights: tuple[float, float] = LSH_WEIGHTS) -> tuple[int, int]:
    """(bands, rows per band) from datasketch's tuning for this threshold and weights: a grid search
    that integrates the false positive and negative rates of every split of num_perm (0.03 s at 128
    permutations, 0.5 s at 1024), so it runs once per process. Near a threshold of 1 it picks a single
    band, which MinHashLSH refuses; two bands of half the permutations each find every pair whose
    estimate is 1 (and more) instead."""
    from datasketch import MinHashLSH

    try:
        lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, weights=weights)
    except ValueError:  # "The number of bands are too small (b < 2)"
        return 2, num_perm // 2
    return lsh.b, lsh.r


class NearDedupIndex:
    """The kept documents' signatures, queried in source order: `match` says which earlier kept
    document a new one near-duplicates, or keeps it."""

    def __init__(self, params: NearDedupParams) -> None:
        from datasketch import MinHashLSH

        self.params = params
        # A fixed basename instead of the random one datasketch draws: nothing here depends on chance.
        self._lsh = MinHashLSH(num_perm=params.num_perm, params=lsh_bands(params.threshold, params.num_perm),
                               storage_config={"type": "dict", "basename": b"near_dedup"})
        self._kept: dict[str, tuple[int, Any]] = {}  # key -> (insertion order, LeanMinHash)
        self.duplicates = 0  # documents matched so far
        self.unsigned = 0  # documents without a word: never matched, never indexed

    def __len__(self) -> int:
        return len(self._kept)

    def match(self, key: str, sig: np.ndarray) -> str | None:
        """The key of the earliest kept document whose estimated Jaccard similarity with `sig` is at
        least `params.threshold`; None when there is none, and then `key` is kept (inserted). A
        signature of no shingle matches nothing and is not inserted: documents without words are
        exact dedup's business, not near-dedup's."""
        if key in self._kept:
            raise ValueError(f"near-dedup: key {key!r} was already kept; each document is matched once")
        if sig.shape != (self.params.num_perm,) or sig.dtype != np.uint32:
            raise ValueError(f"near-dedup: expected a signature of {self.params.num_perm} uint32 values "
                             f"(data.near_dedup.num_perm), got {sig.shape} {sig.dtype}")
        if is_empty(sig):
            self.unsigned += 1
            return None
        mh = lean(sig, self.params)
        candidates = sorted((self._kept[c][0], c) for c in self._lsh.query(mh))
        for _, candidate in candidates:
            if mh.jaccard(self._kept[candidate][1]) >= self.params.threshold:
                self.duplicates += 1
                return candidate
        self._lsh.insert(key, mh, check_duplication=False)  # checked above, in self._kept
        self._kept[key] = (len(self._kept), mh)
        return None


def near_duplicates(docs: Iterable[tuple[str, str]], params: NearDedupParams) -> dict[str, str]:
    """Every near-duplicate among (key, text) pairs taken in the given order, in one process:
    {dropped key: the kept key it matched}. For tests, benchmarks and a corpus small enough for one
    core; prepare runs `signature` in its workers and `NearDedupIndex.match` in its merge instead."""
    index = NearDedupIndex(params)
    found: dict[str, str] = {}
    for key, text in docs:
        kept = index.match(key, signature(text, params))
        if kept is not None:
            found[key] = kept
    return found


# Rows per band for comparing documents across splits (`CrossIndex`): 4 rows make a pair at J = 0.6
# a candidate with probability 0.988 at 128 permutations (32 bands), at 0.7 0.9998. Fixed, so prepare's
# split rule and eval's leak audit draw the same candidates from the same signatures: every pair the
# audit confirms at its higher threshold, prepare has seen.
CROSS_ROWS = 4


class CrossIndex:
    """A few documents' signatures (the held-out ones), queried by many (every document): which indexed
    documents a query's estimated Jaccard similarity reaches `threshold` with. Memory grows with the
    indexed documents only, so the queries can stream."""

    def __init__(self, params: NearDedupParams, threshold: float) -> None:
        from datasketch import MinHashLSH

        self.params, self.threshold = params, threshold
        rows = min(CROSS_ROWS, params.num_perm // 2)
        self._lsh = MinHashLSH(num_perm=params.num_perm, params=(params.num_perm // rows, rows),
                               storage_config={"type": "dict", "basename": b"cross_split"})
        self._sigs: dict[int, Any] = {}

    def __len__(self) -> int:
        return len(self._sigs)

    def add(self, key: int, sig: np.ndarray) -> None:
        """Index document `key`; a signature of no shingle is never indexed (it matches nothing)."""
        if not is_empty(sig):
            mh = lean(sig, self.params)
            self._lsh.insert(key, mh, check_duplication=False)
            self._sigs[key] = mh

    def matches(self, sig: np.ndarray) -> list[tuple[int, float]]:
        """(key, estimated Jaccard) of every indexed document at or above the threshold, by key."""
        if is_empty(sig) or not self._sigs:
            return []
        mh = lean(sig, self.params)
        found = ((key, mh.jaccard(self._sigs[key])) for key in self._lsh.query(mh))
        return sorted((key, j) for key, j in found if j >= self.threshold)
