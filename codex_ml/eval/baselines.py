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

import numpy as np


def gzip_bpb(data: bytes) -> float:
    return len(gzip.compress(data, compresslevel=9, mtime=0)) * 8 / len(data)


def xz_bpb(data: bytes) -> float:
    packed = lzma.compress(data, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC64,
                           preset=9 | lzma.PRESET_EXTREME)
    return len(packed) * 8 / len(data)


def unigram_log2_probs(train_ids: np.ndarray, vocab_size: int) -> np.ndarray:
    """log2 of the add-one-smoothed unigram distribution over `vocab_size` tokens."""
    counts = np.bincount(np.asarray(train_ids, dtype=np.int64), minlength=vocab_size).astype(np.float64)
    if counts.shape[0] > vocab_size:
        raise ValueError(f"train token id {counts.shape[0] - 1} >= vocab_size {vocab_size}")
    return np.log2(counts + 1.0) - math.log2(counts.sum() + vocab_size)


def unigram_bits(log2_probs: np.ndarray, ids: np.ndarray) -> float:
    """Total bits the unigram model needs for `ids`."""
    return float(-log2_probs[np.asarray(ids, dtype=np.int64)].sum())
