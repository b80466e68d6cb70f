"""Infilling samples as an editor meets them: spans of whole lines masked in held-out documents, the
prompts a model gets for them, and the scores of what it writes.

A **span** is one line (`line`) or a block of 2-8 lines (`block`) of a document, with its indentation
and its newlines: the prefix is the text before it, the suffix the text after it (human-eval-
infilling's layout). Its first line is not the document's first (there is a prefix to condition on)
and has a non-space character. Spans are drawn uniformly without replacement from every eligible
first line of a split, seeded; a block's length is drawn after, uniform over 2-8 and cut to the lines
the document has left, so the sample is the same on every run.

Prompts fit the model's window: the middle (to score it, or the tokens to write it) comes first,
then the suffix gets up to half of what is left (more if the prefix is short), the prefix the rest,
keeping the prefix's end and the suffix's start. A prefix kept whole starts after an EOS, the
start-of-document context of training. Left to right (no suffix), the prompt is the same prefix
alone, so the pair of bits-per-byte numbers differs only in whether the suffix is there.

Scores (CodeXGLUE's line-level pair): exact match (line by line, trailing whitespace aside;
indentation counts, as in line completion) and edit similarity, rapidfuzz's `fuzz.ratio` (the
Levenshtein ratio CodeXGLUE computes with fuzzywuzzy) of the stripped texts, as a fraction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from rapidfuzz import fuzz

from codex_ml.fim.transform import prompt as fim_prompt

KINDS = {"line": (1, 1), "block": (2, 8)}  # lines per span: fewest, most


@dataclass(frozen=True)
class Span:
    doc: int  # index of the document in its split
    line: int  # 1-based number of the span's first line
    lines: int  # how many lines it holds
    start: int  # character offset of the middle in the document's text
    end: int  # one past its last character (its last newline included)

    def pieces(self, text: str) -> tuple[str, str, str]:
        return text[:self.start], text[self.start:self.end], text[self.end:]


def _line_starts(text: str) -> list[int]:
    """Offsets where each line starts, and len(text) + 1 past the last line (as if it ended in \\n)."""
    starts = [0]
    at = text.find("\n")
    while at >= 0:
        starts.append(at + 1)
        at = text.find("\n", at + 1)
    if starts[-1] < len(text) or len(starts) == 1:
        starts.append(len(text) + 1)
    return starts


def sample_spans(texts: Sequence[str], n: int, seed: int | list[int], kind: str) -> list[Span]:
    """`n` spans of `kind` (KINDS) drawn from `texts`, in document and line order."""
    fewest, most = KINDS[kind]
    pool: list[tuple[int, int]] = []  # (doc, 0-based first line)
    starts_of: list[list[int]] = []
    for d, text in enumerate(texts):
        starts = _line_starts(text)
        starts_of.append(starts)
        n_lines = len(starts) - 1
        for i in range(1, n_lines - fewest + 1):
            if text[starts[i]:starts[i + 1] - 1].strip():
                pool.append((d, i))
    if n <= 0 or not pool:
        return []
    rng = np.random.default_rng(seed)
    picked = np.sort(rng.choice(len(pool), size=min(n, len(pool)), replace=False))
    lengths = rng.integers(fewest, most + 1, size=len(picked))
    spans = []
    for p, k in zip(picked.tolist(), lengths.tolist(), strict=True):
        d, i = pool[p]
        starts = starts_of[d]
        k = min(k, len(starts) - 1 - i)
        end = min(starts[i + k], len(texts[d]))
        spans.append(Span(d, i + 1, k, starts[i], end))
    return spans


@dataclass(frozen=True)
class Prompt:
    """One span's token sequences: `fim` and `l2r` contexts (each ends where the middle starts)."""

    fim: list[int] | None  # None without sentinels
    l2r: list[int]
    middle: list[int]


def fit(prefix: Sequence[int], suffix: Sequence[int], budget: int) -> tuple[list[int], list[int], bool]:
    """The prefix's end and the suffix's start within `budget` tokens, and whether the prefix is whole."""
    budget = max(0, budget)
    take_suffix = min(len(suffix), max(budget // 2, budget - len(prefix)))
    take_prefix = min(len(prefix), budget - take_suffix)
    return list(prefix[len(prefix) - take_prefix:]), list(suffix[:take_suffix]), take_prefix == len(prefix)


def build_prompt(prefix: Sequence[int], middle: Sequence[int], suffix: Sequence[int], *, window: int,
                 room: int, eos_id: int, sentinels: tuple[int, int, int] | None, spm: bool = False) -> Prompt:
    """Contexts for a span whose middle needs `room` tokens of the window (its length to score it, the
    new tokens to write it). The same prefix tokens in both contexts."""
    budget = window - room - (4 if sentinels else 1)  # EOS and three sentinels
    head, tail, whole = fit(prefix, suffix if sentinels else [], budget)
    lead = [eos_id] if whole else []
    fim = lead + fim_prompt(head, tail, sentinels, spm) if sentinels else None
    return Prompt(fim=fim, l2r=lead + head, middle=list(middle))


def lines_of(text: str, n: int) -> str:
    """The first `n` lines of `text`, each with its newline (a last line without one as it is)."""
    parts = text.split("\n")
    return "\n".join(parts[:n]) + ("\n" if len(parts) > n else "")


def exact_match(completion: str, target: str) -> bool:
    """Line for line equal, trailing whitespace aside (indentation is syntax in Python)."""
    got = [line.rstrip() for line in completion.rstrip("\n").split("\n")]
    want = [line.rstrip() for line in target.rstrip("\n").split("\n")]
    return got == want


def edit_similarity(completion: str, target: str) -> float:
    """CodeXGLUE's edit similarity (Levenshtein ratio of the stripped texts), in [0, 1]."""
    return float(fuzz.ratio(completion.strip(), target.strip())) / 100.0
