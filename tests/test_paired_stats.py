"""codex_ml/stats/paired.py against what it must agree with: nothing moved is no difference; a small
sign-flip test is exact; with pooled runs and no document noise, the t is Student's two-sample t; the
paired interval is eval's bootstrap of the per-document differences."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from codex_ml.stats.bootstrap import ratio_interval, resample_counts
from codex_ml.stats.paired import paired_difference, sign_flip_p


def documents(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n documents' bytes and bits at about 1.2 bits per byte, unevenly (as code files are)."""
    rng = np.random.default_rng(seed)
    nbytes = rng.integers(300, 40_000, n).astype(float)
    return nbytes, nbytes * rng.uniform(0.7, 2.0, n)


def test_a_run_against_itself_is_exactly_no_difference() -> None:
    nbytes, bits = documents(40)
    d = paired_difference(bits, bits, nbytes, resamples=500, seed=1)
    assert (d.diff, d.interval, d.p, d.detectable) == (0.0, (0.0, 0.0), 1.0, 0.0)
    assert d.a == d.b == pytest.approx(bits.sum() / nbytes.sum())


def test_the_sign_flip_test_is_exact_for_few_documents() -> None:
    nbytes, bits = documents(6)
    worse = bits * 1.05  # every document worse: only "all flipped back" is as extreme, each way
    assert sign_flip_p(bits, worse, 10_000, seed=3) == pytest.approx(2 / 2**6)
    d = paired_difference(bits, worse, nbytes, resamples=10_000, seed=3)
    assert d.p == pytest.approx(2 / 2**6) and d.diff == pytest.approx(0.05 * bits.sum() / nbytes.sum())


def test_one_run_a_side_is_eval_s_bootstrap_of_the_differences() -> None:
    nbytes, bits = documents(50)
    rng = np.random.default_rng(7)
    other = bits * (1 - 0.02 + rng.normal(0, 0.03, 50))
    d = paired_difference(bits, other, nbytes, resamples=1000, seed=11)
    assert d.interval == ratio_interval(other - bits, nbytes, resample_counts(50, 1000, 11))
    assert d.interval[0] < d.diff < d.interval[1] < 0  # 2% fewer bits, documents noisy around it: detected
    assert d.p is not None and d.p < 0.01 and d.runs == (1, 1) and d.seed_sd is None


def test_pooled_runs_without_document_noise_are_student_s_t() -> None:
    nbytes, bits = documents(30)
    shifts_a, shifts_b = np.array([0.0, 0.004, -0.003]), np.array([0.01, 0.006, 0.013])
    # each run moves every document's bits per byte by the same amount: the documents add no spread
    a = np.stack([bits + s * nbytes for s in shifts_a])
    b = np.stack([bits + s * nbytes for s in shifts_b])
    d = paired_difference(a, b, nbytes, resamples=400, seed=5)
    runs_a, runs_b = a.sum(1) / nbytes.sum(), b.sum(1) / nbytes.sum()
    student = sps.ttest_ind(runs_b, runs_a, equal_var=True)
    assert d.diff == pytest.approx(runs_b.mean() - runs_a.mean())
    assert d.p == pytest.approx(student.pvalue, rel=1e-6)
    assert d.seed_sd == pytest.approx(np.sqrt((runs_a.var(ddof=1) + runs_b.var(ddof=1)) / 2))
    half = sps.t.ppf(0.975, 4) * d.seed_sd * np.sqrt(2 / 3)
    assert d.interval == pytest.approx((d.diff - half, d.diff + half), rel=1e-6)
