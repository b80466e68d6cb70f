"""Percentile bootstrap over documents for ratio metrics (sum of a per-document numerator over sum of
a per-document denominator: NLL/tokens, bits/bytes, correct/tokens, matches/samples). Eval's intervals
and compare's paired intervals (paired.py: the numerator is the two runs' per-document difference) are
both this one.

Documents, not tokens, are resampled: tokens of one file are strongly correlated (one file of
generated tables is easy throughout), so a token-level bootstrap would give intervals far too narrow.
The token metrics of a split share the same resamples, drawn from one seeded generator; line
completion draws its own over the documents that had lines sampled.
"""

from __future__ import annotations

import numpy as np

LEVEL = 0.95
_CHUNK = 256  # resamples per matrix product: bounds memory at 256 x documents counts


def resample_counts(n_docs: int, resamples: int, seed: int | list[int]) -> np.ndarray:
    """[resamples, n_docs] how often each document is drawn in each resample (each row sums to n_docs)."""
    rng = np.random.default_rng(seed)
    if n_docs == 0 or resamples == 0:
        return np.zeros((resamples, n_docs), dtype=np.int64)
    return rng.multinomial(n_docs, np.full(n_docs, 1.0 / n_docs), size=resamples)


def ratio_resamples(numer: np.ndarray, denom: np.ndarray, counts: np.ndarray) -> np.ndarray | None:
    """sum(numer)/sum(denom) in each resample (one value per row of `counts`); None without resamples
    or when a resample has nothing in its denominator (no defined ratio)."""
    if counts.shape[0] == 0 or counts.shape[1] == 0:
        return None
    numer = np.asarray(numer, dtype=np.float64)
    denom = np.asarray(denom, dtype=np.float64)
    stats = []
    for lo in range(0, counts.shape[0], _CHUNK):
        c = counts[lo:lo + _CHUNK].astype(np.float64)
        d = c @ denom
        if np.any(d <= 0):
            return None
        stats.append((c @ numer) / d)
    return np.concatenate(stats)


def ratio_interval(numer: np.ndarray, denom: np.ndarray, counts: np.ndarray,
                   level: float = LEVEL) -> tuple[float, float] | None:
    """The `level` percentile interval of sum(numer)/sum(denom) over resamples; None without resamples
    or when a resample has nothing in its denominator (no defined ratio: report no interval)."""
    stats = ratio_resamples(numer, denom, counts)
    if stats is None:
        return None
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(stats, [alpha, 1.0 - alpha])
    return float(low), float(high)

