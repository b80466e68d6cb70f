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

A FIM window is the first `length` tokens of the transformed text that starts where the left-to-right
window starts: sentinels and re-encoding make a fragment a few tokens longer, so the window is read
with MARGIN tokens to spare and its end is cut, exactly as a left-to-right window cuts the document
it ends in. Every fragment but the window's last is whole, so prefix, suffix and middle are the ones
an editor would show (a suffix running to the end of its file included). A window that still comes
out short (the end of the stream) is padded with `pad_id`, label IGNORE. A fragment whose ends split
a character (a window edge inside a character spelled as several byte tokens) stays as it is.
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
MARGIN = 64  # tokens read past a window's end: what its fragments grow by under FIM, with room to spare
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
    padded_windows: int = 0  # came out shorter than their length (the end of the stream)


class FimWindows:
    """Makes FIM windows from the packed stream: `context` for one window, `document_window` for a
    window cut from transformed documents. Both return (input_ids, labels), int64, of the window's
    length."""

    def __init__(self, config: FimConfig, hf: Tokenizer, table: TokenBytes | None = None):
        if not 0.0 <= config.rate <= 1.0 or not 0.0 <= config.spm_rate <= 1.0:
            raise ValueError(f"FIM rates must be in [0, 1], got rate {config.rate}, "
                             f"spm_rate {config.spm_rate}")
        self.config, self.hf = config, encoder(hf)
        self.table = table if table is not None else TokenBytes(hf)
        self.counts = FimCounts()
        self._documents: OrderedDict[int, np.ndarray] = OrderedDict()

    def _encode(self, text: str) -> list[int]:
        return list(self.hf.encode(text, add_special_tokens=False).ids)

    def fragment(self, ids: np.ndarray, rng: np.random.Generator) -> list[int] | None:
        """One fragment (no EOS in it) as FIM ids, or None to keep it as it is."""
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
        self.counts.transformed += 1
        self.counts.spm += d.spm
        return arrange(prefix, middle, suffix, c.sentinels, d.spm)

    def _apply(self, ids: np.ndarray, key: Sequence[int | str]) -> np.ndarray:
        """Every fragment of `ids` through `fragment`, EOS kept between them."""
        out: list[np.ndarray] = []
        ends = np.flatnonzero(ids == self.config.eos_id)
        starts = np.concatenate([[0], ends + 1])
        stops = np.concatenate([ends, [len(ids)]])
        for k, (a, b) in enumerate(zip(starts.tolist(), stops.tolist(), strict=True)):
            made = self.fragment(ids[a:b], example_rng(self.config.seed, *key, k)) if b > a else None
            out.append(ids[a:b].astype(np.int64) if made is None else np.asarray(made, dtype=np.int64))
            if b < len(ids):
                out.append(np.asarray([self.config.eos_id], dtype=np.int64))
        return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)

    def _fit(self, ids: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
        ids = ids[:length]
        labels = ids.copy()
        if len(ids) < length:
            self.counts.padded_windows += 1
            pad = length - len(ids)
            ids = np.concatenate([ids, np.full(pad, self.config.pad_id, dtype=np.int64)])
            labels = np.concatenate([labels, np.full(pad, IGNORE, dtype=np.int64)])
        return ids, labels

    def context(self, tokens: np.ndarray, key: Sequence[int | str], length: int
                ) -> tuple[np.ndarray, np.ndarray]:
        """Context-level FIM: `tokens` is the window read with MARGIN tokens to spare (fewer at the end
        of the stream), `key` identifies the window (its index in the run), `length` its size."""
        return self._fit(self._apply(np.asarray(tokens), key), length)

    def document(self, number: int, ids: np.ndarray) -> np.ndarray:
        """Document-level FIM of document `number` (its ids without the closing EOS), once per run."""
        if number in self._documents:
            self._documents.move_to_end(number)
            return self._documents[number]
        made = self._apply(np.asarray(ids), ("document", number))
        self._documents[number] = made
        if len(self._documents) > DOCUMENT_CACHE:
            self._documents.popitem(last=False)
        return made

    def document_window(self, stream: Stream, offsets: np.ndarray, start: int, length: int
                        ) -> tuple[np.ndarray, np.ndarray]:
        """`length` tokens of the transformed documents from where token `start` of the stream is
        (its offset in its document, or the transformed document's end when shorter); `offsets`:
        len(documents) + 1 token offsets (codex_ml.shards.SplitIndex.offsets)."""
        d = int(np.searchsorted(offsets, start, side="right")) - 1
        eos = np.asarray([self.config.eos_id], dtype=np.int64)
        parts: list[np.ndarray] = []
        held, skip = 0, start - int(offsets[d])
        while held < skip + length and d < len(offsets) - 1:
            lo, hi = int(offsets[d]), int(offsets[d + 1])
            parts.append(np.concatenate([self.document(d, stream[lo:hi - 1]), eos]))
            held += len(parts[-1])
            d += 1
        ids = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
        return self._fit(ids[min(skip, len(parts[0]) - 1 if parts else 0):], length)
