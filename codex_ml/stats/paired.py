"""The difference between two runs scored on the same documents, with an interval and a p-value.

A metric here is a ratio over documents, sum(numer) / sum(denom), as eval's headline is (bits over
bytes, matches over samples, passes over problems). Two runs that scored the same documents share the
denominator, so their difference is itself a ratio: the per-document differences over the shared
denominator. Pairing removes what the documents have in common (a hard file is hard for both runs),
which is most of the spread, so a paired difference is several times more precise than the two runs'
separate intervals suggest.

One run a side: the documents are the only replication.
- interval: the percentile bootstrap over documents of eval (bootstrap.py), on the paired differences;
- p-value: a sign-flip permutation test (scipy.stats.permutation_test, paired samples: under "the two
  runs are interchangeable", each document's pair is swapped at random). Exact for up to 13 documents,
  otherwise Monte Carlo with the resamples given, two-sided.
  A single run carries the seed noise of its own training, which neither can see: two seeds of one
  config differ by more than their documents' noise once the held-out set is large.

Several runs a side (seeds of one config, pooled): runs are the replication of seed noise.
- the difference is of the sides' mean metrics; its variance is the seed part, the runs' pooled
  variance s^2 (1/k + 1/m) (Student's equal-variance two-sample t, which also serves one run against
  several), plus the document part, the bootstrap variance over documents of the sides' mean
  per-document differences (a little of the seed noise is in both: conservative);
- t = difference / standard error, degrees of freedom by Welch-Satterthwaite over the two parts;
  interval difference +- t quantile x standard error, p-value two-sided.

`detectable` is the half-width of the (1 - alpha) interval: the smallest difference this comparison
would call significant at p < alpha.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from codex_ml.stats.bootstrap import LEVEL, ratio_interval, ratio_resamples, resample_counts


@dataclass(frozen=True)
class Difference:
    """Side B minus side A of one metric."""

    a: float  # the metric of side A (the mean over its runs)
    b: float
    diff: float  # b - a
    interval: tuple[float, float] | None  # `level` interval of diff; None without resamples
    p: float | None  # two-sided p-value of "no difference"
    detectable: float | None  # half-width of the (1 - alpha) interval
    test: str  # which test, in words
    units: int  # documents (or problems) paired
    runs: tuple[int, int]  # runs on each side
    seed_sd: float | None  # run-to-run standard deviation of the metric (pooled), with >= 2 runs a side


def paired_difference(numer_a: np.ndarray, numer_b: np.ndarray, denom: np.ndarray, *, resamples: int,
                      seed: int, alpha: float = 0.01, level: float = LEVEL) -> Difference:
    """`numer_a` [runs of A, units], `numer_b` [runs of B, units], `denom` [units] shared by every run."""
    numer_a, numer_b = np.atleast_2d(numer_a).astype(np.float64), np.atleast_2d(numer_b).astype(np.float64)
    denom = np.asarray(denom, dtype=np.float64)
    total = float(denom.sum())
    if total <= 0 or numer_a.shape[1] != denom.shape[0] or numer_b.shape[1] != denom.shape[0]:
        raise ValueError("paired_difference: every run needs a value per unit and a positive denominator")
    per_run_a, per_run_b = numer_a.sum(axis=1) / total, numer_b.sum(axis=1) / total
    a, b = float(per_run_a.mean()), float(per_run_b.mean())
    d = numer_b.mean(axis=0) - numer_a.mean(axis=0)  # per unit, over the shared denominator
    diff = float(d.sum() / total)
    counts = resample_counts(len(denom), resamples, seed)
    k, m = len(per_run_a), len(per_run_b)
    if k == 1 and m == 1:
        lo_hi = ratio_interval(d, denom, counts, level)
        wide = ratio_interval(d, denom, counts, 1.0 - alpha)
        detectable = None if wide is None else (wide[1] - wide[0]) / 2
        p = sign_flip_p(numer_a[0], numer_b[0], resamples, seed) if resamples else None
        return Difference(a, b, diff, lo_hi, p, detectable,
                          f"paired bootstrap interval and sign-flip permutation p over {len(denom)} units",
                          len(denom), (1, 1), None)
    resampled = ratio_resamples(d, denom, counts)
    var_docs = float(np.var(resampled, ddof=1)) if resampled is not None and len(resampled) > 1 else 0.0
    df_seed = (k - 1) + (m - 1)
    pooled = (((per_run_a - a) ** 2).sum() + ((per_run_b - b) ** 2).sum()) / df_seed
    var_seed = float(pooled) * (1.0 / k + 1.0 / m)
    se = float(np.sqrt(var_docs + var_seed))
    test = f"t over {k}+{m} runs (seed noise) and {len(denom)} units (bootstrap variance)"
    if se == 0.0:
        return Difference(a, b, diff, (diff, diff), 1.0 if diff == 0 else 0.0, 0.0, test, len(denom),
                          (k, m), 0.0)
    parts = var_docs ** 2 / max(len(denom) - 1, 1) + var_seed ** 2 / df_seed
    df = (var_docs + var_seed) ** 2 / parts
    half = float(sps.t.ppf(0.5 + level / 2, df)) * se
    return Difference(a, b, diff, (diff - half, diff + half), float(2 * sps.t.sf(abs(diff) / se, df)),
                      float(sps.t.ppf(1 - alpha / 2, df)) * se, test, len(denom), (k, m),
                      float(np.sqrt(pooled)))


def sign_flip_p(x: np.ndarray, y: np.ndarray, resamples: int, seed: int) -> float:
    """Two-sided p of sum(y - x) under random swaps of each pair (x_i, y_i), seeded."""
    if not np.any(x != y):
        return 1.0

    def statistic(u: np.ndarray, v: np.ndarray, axis: int) -> np.ndarray:
        return np.sum(v - u, axis=axis)

    res = sps.permutation_test((x, y), statistic, permutation_type="samples", vectorized=True,
                               n_resamples=resamples, alternative="two-sided",
                               rng=np.random.default_rng(seed))
    return float(res.pvalue)
