"""Sliding windows: score every token of a document exactly once, each with as much of its own
document before it as the model's context allows.

A document is scored as the sequence `s = [EOS] + ids`, where `ids` are its tokens plus the closing
EOS. The leading EOS is the start-of-document marker the model saw in training (documents follow an
EOS in the packed stream), so even the first token is predicted from the same state as in training.
Targets are `s[1:]`: target `t` is predicted by the logits at position `t - 1`.

Window `(start, end, first)` feeds `s[start:end]` (at most `window` tokens) and scores targets
`first..end` (inclusive; `first > start`). The first window scores everything it sees; each later one
moves its end forward by `stride` and scores only the new targets, so a target always has at least
`window - stride + 1` tokens of context (or all of its document before it, if that is shorter).
Windows never cross documents.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Window:
    doc: int  # index of the document in its split
    start: int  # first input position in s
    end: int  # one past the last input position in s; also the last target scored
    first: int  # first target scored

    @property
    def length(self) -> int:
        return self.end - self.start


def plan_document(doc: int, n_targets: int, window: int, stride: int) -> list[Window]:
    """Windows over one document with `n_targets` scored tokens (its ids incl. the closing EOS)."""
    if window < 2:
        raise ValueError(f"window must be >= 2 tokens, got {window}")
    if not 1 <= stride <= window - 1:
        raise ValueError(f"stride must be in [1, window - 1 = {window - 1}], got {stride}")
    last = n_targets  # targets are s[1..n_targets]; s has n_targets + 1 tokens
    end = min(window, last)
    out = [Window(doc, 0, end, 1)]
    while end < last:
        new_end = min(end + stride, last)
        out.append(Window(doc, new_end - window, new_end, end + 1))
        end = new_end
    return out


def plan(doc_lengths: list[int], window: int, stride: int) -> list[Window]:
    """All windows of a split, ordered for batching: longest first (batches pad least), then most
    scored first (so windows scoring only their last `stride` targets share batches, and the output
    layer runs on those positions alone), then by document and position. The order, and hence every
    batch, is deterministic."""
    windows = [w for i, n in enumerate(doc_lengths) for w in plan_document(i, n, window, stride)]
    windows.sort(key=lambda w: (-w.length, -(w.end - w.first), w.doc, w.start))
    return windows
