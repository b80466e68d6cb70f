"""Training windows: fixed-length windows cut from the packed token streams of the tokenize stage.

Train windows start at seeded random offsets in the train split's stream (its shards in order, read as
one sequence: codex_ml/shards.py). Window i is a pure function of (seed, i),
so the sampler's whole state is its position: how many windows have been consumed. A checkpoint
records that position, and a resumed run continues with exactly the windows an uninterrupted run
would have seen, on any number of processes. Val windows are evenly spaced over the val stream and fixed,
so every val loss in a run (and across runs) is measured on the same tokens.

With train.fim (codex_ml/fim/windows.py) a train window is transformed as it is read, keyed by its
place in the run (block, window): still a pure function of the index, so a resumed run and any number
of processes see the same windows byte for byte. Val windows stay left to right: val loss measures
what every run is compared on.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from codex_ml.fim.windows import MARGIN, FimWindows
from codex_ml.runtime import StageError
from codex_ml.shards import TokenStream


def _window(tokens: TokenStream, start: int, seq_len: int) -> dict[str, torch.Tensor]:
    ids = torch.from_numpy(tokens[start:start + seq_len].astype(np.int64))
    # Causal LMs in transformers shift labels inside the model: labels == input_ids.
    return {"input_ids": ids, "labels": ids}


class TrainWindows(torch.utils.data.Dataset):
    """`count` windows of `seq_len` tokens at seeded random offsets; read in order (index = position).

    Offsets are drawn per block of `block` windows (one optimizer step's worth) from a generator
    seeded by (seed, block index): O(1) memory however long the run, and any index is reachable
    without replaying the ones before it.

    From index `final_from` on (train.final_seq_len), a block holds block / r windows of r x seq_len
    tokens instead, r = final_seq_len / seq_len: each is handed out as r consecutive items of seq_len
    tokens, its consecutive pieces, which `join_windows` puts back together in the batch. Items keep
    one shape, so the Trainer's loader, its per-process split of a step and the resume position (a
    count of items) work unchanged; a step still holds `block` x seq_len tokens.
    """

    def __init__(self, tokens: TokenStream, seq_len: int, count: int, block: int, seed: int,
                 final_seq_len: int = 0, final_from: int | None = None, fim: FimWindows | None = None,
                 offsets: np.ndarray | None = None):
        longest = max(seq_len, final_seq_len)
        if len(tokens) < longest:
            key = "train.final_seq_len" if final_seq_len > seq_len else "train.seq_len"
            raise StageError(f"train split has {len(tokens)} tokens, fewer than {key}={longest}")
        self.tokens, self.seq_len, self.count, self.block, self.seed = tokens, seq_len, count, block, seed
        self.ratio = final_seq_len // seq_len if final_seq_len else 1
        if block % self.ratio:
            raise StageError(f"train.batch_size: {block} windows per step do not split into windows of "
                             f"{final_seq_len} tokens ({self.ratio} each)")
        self.final_from = count if final_from is None or self.ratio == 1 else final_from
        self._cached: tuple[int, np.ndarray] | None = None
        if fim is not None and fim.config.level == "document" and offsets is None:
            raise ValueError("document-level FIM needs the split's document offsets")
        self.fim, self.offsets = fim, offsets
        self._made: tuple[tuple[int, int], tuple[np.ndarray, np.ndarray]] | None = None

    def __len__(self) -> int:
        return self.count

    def start(self, index: int) -> int:
        b, offset = divmod(index, self.block)
        ratio = self.ratio if index >= self.final_from else 1
        if self._cached is None or self._cached[0] != b:
            rng = np.random.default_rng([self.seed, b])
            length = self.seq_len * ratio
            self._cached = (b, rng.integers(0, len(self.tokens) - length + 1, size=self.block // ratio))
        window, piece = divmod(offset, ratio)
        return int(self._cached[1][window]) + piece * self.seq_len

    def _fim_piece(self, index: int) -> dict[str, torch.Tensor]:
        """The window holding item `index` through FIM (made once for its consecutive pieces), and the
        item's piece of it."""
        assert self.fim is not None
        b, offset = divmod(index, self.block)
        ratio = self.ratio if index >= self.final_from else 1
        window, piece = divmod(offset, ratio)
        if self._made is None or self._made[0] != (b, window):
            start, length = self.start(index) - piece * self.seq_len, self.seq_len * ratio
            if self.fim.config.level == "document":
                assert self.offsets is not None
                made = self.fim.document_window(self.tokens, self.offsets, start, length)
            else:
                made = self.fim.context(self.tokens[start:start + length + MARGIN], (b, window), length)
            self._made = ((b, window), made)
        ids, labels = (torch.from_numpy(a[piece * self.seq_len:(piece + 1) * self.seq_len])
                       for a in self._made[1])
        return {"input_ids": ids, "labels": labels}

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < self.count:
            raise IndexError(index)
        if self.fim is None:
            item = _window(self.tokens, self.start(index), self.seq_len)
        else:
            item = self._fim_piece(index)
        item["join"] = torch.tensor(self.ratio if index >= self.final_from else 1)
        return item


def join_windows(items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """The data collator for TrainWindows: stack the items, and rejoin the pieces of final windows."""
    join = {int(item.pop("join", 1)) for item in items}
    if len(join) != 1:
        raise ValueError(f"a batch mixes windows of {sorted(join)} pieces")  # never: a batch is in one step
    ratio = join.pop()
    batch = {key: torch.stack([item[key] for item in items]) for key in items[0]}
    if ratio > 1:
        batch = {key: t.reshape(-1, ratio * t.shape[1]) for key, t in batch.items()}
    return batch


class EvalWindows(torch.utils.data.Dataset):
    """`count` windows of `seq_len` tokens evenly spaced over a split (fixed: no randomness)."""

    def __init__(self, tokens: TokenStream, seq_len: int, count: int, split: str = "val"):
        if len(tokens) < seq_len:
            raise StageError(f"{split} split has {len(tokens)} tokens, fewer than train.seq_len={seq_len}")
        self.tokens, self.seq_len = tokens, seq_len
        self.starts = np.linspace(0, len(tokens) - seq_len, count).astype(np.int64)

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return _window(self.tokens, int(self.starts[index]), self.seq_len)
