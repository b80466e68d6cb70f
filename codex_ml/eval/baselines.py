"""What a reader compares the model's bits per byte against.

- gzip -9 and xz -9e: the split's documents concatenated in prepared order (the bytes `cat`-ing the
  files would give), compressed as one stream, exactly as the command-line tools would (same formats,
  presets and checks; gzip with no name or time stamp, like `gzip -9n`). One stream lets the compressor
  reuse context across documents, which the model is not given: the comparison favours the compressors.
- unigram: each token's add-one-smoothed frequency in the train split (`(count + 1) / (N + V)`),
  scored on exactly the tokens the model is scored on (document tokens and their EOS). It is the
  model that knows the train split and nothing of context.
"""

from __future__ import annotations

import gzip
import lzma
import math
from collections.abc import Iterable

import numpy as np


def gzip_bpb(data: bytes) -> float:
    return len(gzip.compress(data, compresslevel=9, mtime=0)) * 8 / len(data)


def xz_bpb(data: bytes) -> float:
    packed = lzma.compress(data, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC64,
                           preset=9 | lzma.PRESET_EXTREME)
    return len(packed) * 8 / len(data)


def unigram_log2_probs(train_ids: np.ndarray | Iterable[np.ndarray], vocab_size: int) -> np.ndarray:
    """log2 of the add-one-smoothed unigram distribution over `vocab_size` tokens; `train_ids` is one
    array or its pieces (a split's shards), counted one at a time."""
    pieces = [train_ids] if isinstance(train_ids, np.ndarray) else train_ids
    counts = np.zeros(vocab_size, dtype=np.float64)
    for piece in pieces:
        c = np.bincount(np.asarray(piece, dtype=np.int64), minlength=vocab_size)
        if c.shape[0] > vocab_size:
            raise ValueError(f"train token id {c.shape[0] - 1} >= vocab_size {vocab_size}")
        counts += c
    return np.log2(counts + 1.0) - math.log2(counts.sum() + vocab_size)


def unigram_bits(log2_probs: np.ndarray, ids: np.ndarray) -> float:
    """Total bits the unigram model needs for `ids`."""
    return float(-log2_probs[np.asarray(ids, dtype=np.int64)].sum())
