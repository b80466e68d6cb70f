"""FIM where training windows are made from the packed token streams, so a change of rate retrains
without re-tokenizing: the token files stay left to right, and each window is transformed as it is
read.

A run of tokens between two EOS (a document, or the part of one a window holds) is a **fragment**.
Its text comes back exactly from its ids (token_bytes.py), is cut at two characters
(transform.py), and the three pieces are encoded again with the same tokenizer: only tokens at the
two cuts change. Two levels, as in Bavarian et al. (who found context-level better):

- **context**: each fragment of a window is transformed on its own, with probability `rate`, keyed
  by (seed, window key, fragment number): every read of a window is a fresh example;
- **document**: each whole document is transformed once per run, keyed by (seed, document number),
  and windows are cut from the transformed documents: a window may hold a middle without its
  prefix and suffix.

Every transformed fragment keeps its length, so windows, their EOS positions and the sampler's
offsets are the same with FIM as without (Megatron-LM's way): sentinels and re-encoding usually add
a few tokens, taken from the far end of the suffix, then from the start of the prefix (text a
window could equally have cut off); a fragment too short to give them up stays as it is. One that
comes out shorter is padded with `pad_id` just before `<fim_middle>`, and its padding is not
trained on (label IGNORE). A fragment whose ends split a character (a window edge inside a
character spelled as several byte tokens) stays as it is.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
from tokenizers import Tokenizer

from codex_ml.fim.token_bytes import TokenBytes, encoder
from codex_ml.fim.transform import arrange, cut, draw, example_rng

IGNORE = -100  # the label transformers' causal LMs skip
DOCUMENT_CACHE = 256  # transformed documents kept (document level): windows often share one


class Stream(Protocol):
    """A split's tokens (codex_ml.shards.TokenStream): len() and contiguous slices."""

    def __len__(self) -> int: ...
    def __getitem__(self, key: slice) -> np.ndarray: ...


@dataclass(frozen=True)
class FimConfig:
    rate: float  # share of fragments (context) or documents (document) transformed
    spm_rate: float  # share of transformed ones in SPM order
    seed: int
    level: Literal["context", "document"]
    sentinels: tuple[int, int, int]  # (prefix, middle, suffix) ids
    eos_id: int
    pad_id: int


@dataclass
class FimCounts:
    """What happened to the fragments seen (for metrics and tests)."""

    fragments: int = 0
    transformed: int = 0
    spm: int = 0
    split_character: int = 0  # left as they were: an end inside a character
    too_short: int = 0  # left as they were: too short to make room for the sentinels
    padded: int = 0


class FimWindows:
    """Makes FIM windows from left-to-right ones: `context` for one window, `document_window` for a
    window cut from transformed documents. Both return (input_ids, labels), int64, of the window's
    length."""

    def __init__(self, config: FimConfig, hf: Tokenizer, table: TokenBytes | None = None):
        if not 0.0 <= config.rate <= 1.0 or not 0.0 <= config.spm_rate <= 1.0:
            raise ValueError(f"FIM rates must be in [0, 1], got rate {config.rate}, "
                             f"spm_rate {config.spm_rate}")
        self.config, self.hf = config, encoder(hf)
        self.table = table if table is not None else TokenBytes(hf)
        self.counts = FimCounts()
        self._documents: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()

    def _encode(self, text: str) -> list[int]:
        return list(self.hf.encode(text, add_special_tokens=False).ids)

    def fragment(self, ids: np.ndarray, rng: np.random.Generator) -> tuple[list[int], list[int]] | None:
        """One fragment (no EOS in it) as FIM ids and labels of the same length, or None to keep it."""
        c = self.config
        d = draw(rng, c.rate, c.spm_rate)
        self.counts.fragments += 1
        if not d.fim or len(ids) == 0:
            return None
        text = self.table.text(ids)
        if text is None:
            self.counts.split_character += 1
            return None
        pieces = cut(text, d.cuts)
        prefix, middle, suffix = (self._encode(t) for t in (pieces.prefix, pieces.middle, pieces.suffix))
        excess = len(prefix) + len(middle) + len(suffix) + 3 - len(ids)
        if excess > len(suffix) + len(prefix):
            self.counts.too_short += 1
            return None
        if excess > 0:
            from_suffix = min(excess, len(suffix))
            suffix = suffix[:len(suffix) - from_suffix]
            prefix = prefix[excess - from_suffix:]
        pad = max(0, -excess)
        out = arrange(prefix, middle, suffix + [c.pad_id] * pad, c.sentinels, d.spm)
        labels = list(out)
        if pad:
            at = out.index(c.sentinels[1]) - pad  # padding sits just before <fim_middle>
            labels[at:at + pad] = [IGNORE] * pad
            self.counts.padded += 1
        self.counts.transformed += 1
        self.counts.spm += d.spm
        return out, labels

    def _apply(self, ids: np.ndarray, key: Sequence[int | str]) -> tuple[np.ndarray, np.ndarray]:
        out = ids.astype(np.int64)
        labels = out.copy()
        ends = np.flatnonzero(out == self.config.eos_id)
        starts = np.concatenate([[0], ends + 1])
        stops = np.concatenate([ends, [len(out)]])
        for k, (a, b) in enumerate(zip(starts.tolist(), stops.tolist(), strict=True)):
            if b > a:
                made = self.fragment(out[a:b], example_rng(self.config.seed, *key, k))
                if made is not None:
                    out[a:b], labels[a:b] = made
        return out, labels

    def context(self, window: np.ndarray, key: Sequence[int | str]) -> tuple[np.ndarray, np.ndarray]:
        """Context-level FIM of one window; `key` identifies the window (e.g. its index in the run)."""
        return self._apply(window, key)

    def document(self, number: int, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Document-level FIM of document `number` (its ids without the closing EOS), once per run."""
        if number in self._documents:
            self._documents.move_to_end(number)
            return self._documents[number]
        made = self._apply(ids, ("document", number))
        self._documents[number] = made
        if len(self._documents) > DOCUMENT_CACHE:
            self._documents.popitem(last=False)
        return made

    def document_window(self, stream: Stream, offsets: np.ndarray, start: int, length: int
                        ) -> tuple[np.ndarray, np.ndarray]:
        """Window [start, start + length) of the stream with each document in it transformed whole;
        `offsets`: len(documents) + 1 token offsets (codex_ml.shards.SplitIndex.offsets)."""
        stop = start + length
        first = int(np.searchsorted(offsets, start, side="right")) - 1
        last = int(np.searchsorted(offsets, stop, side="left"))
        ids, labels = [], []
        for d in range(first, last):
            lo, hi = int(offsets[d]), int(offsets[d + 1])
            doc_ids, doc_labels = self.document(d, stream[lo:hi - 1])
            eos = np.array([self.config.eos_id], dtype=np.int64)
            a, b = max(start, lo) - lo, min(stop, hi) - lo
            ids.append(np.concatenate([doc_ids, eos])[a:b])
            labels.append(np.concatenate([doc_labels, eos])[a:b])
        return np.concatenate(ids), np.concatenate(labels)
