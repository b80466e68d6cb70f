"""How large val and test must be, and how much a run's seed alone moves its numbers.

From runs of one config that differ only in `train.seed` (git revisions, `dvc exp` names or folders,
as `codex compare` reads them), scored on held-out sets of `data.val_fraction` = `test_fraction` = F:

1. Sizes: for each fraction f <= F, the documents the path hash puts in test (u < f) and val
   (f <= u < 2f) are all held out in these runs (u < 2F), so their rows give each split's size and
   the half-width of its 95% bootstrap interval at that fraction (the first run's model; near-duplicate
   clusters aside, which move a few documents).
2. Seed noise: the paired difference between every two seeds (`codex compare` A B), and the run-to-run
   standard deviation of each split's bits per byte.
3. The smallest change detectable at p < 0.01 with k seeds a side: measured as `codex compare` reports
   it where the runs allow (k seeds against k others), and for larger k from the same two variance
   parts (seed: s^2 2/k; documents: the one-pair document variance over k), with Welch-Satterthwaite
   degrees of freedom, as compare's test computes them.

    python benchmarks/bench_held_out.py --runs seed-1337,seed-1,seed-2,seed-3 --held-out 0.1
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np
from scipy import stats as sps

from codex_ml.compare.metrics import METRICS
from codex_ml.compare.pairing import matrices
from codex_ml.compare.runs import Run, load_runs, split_side
from codex_ml.data.splits import hash_unit
from codex_ml.stats.bootstrap import ratio_interval, ratio_resamples, resample_counts
from codex_ml.stats.paired import paired_difference

BPB = next(m for m in METRICS if m.headline)
RESAMPLES, SEED, ALPHA = 4000, 1337, 0.01


def rows_by_path(run: Run) -> dict[str, dict]:
    return {r["path"]: r for split in ("val", "test") for r in run.rows[f"{split}.ndjson"] or []}


def sizes(run: Run, fractions: list[float], held_out: float) -> None:
    rows = rows_by_path(run)
    units = {p: hash_unit(p) for p in rows}
    print("| val and test fraction | val documents | val bytes | val interval | test documents | test bytes "
          "| test interval |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for f in fractions:
        if f > held_out + 1e-9:  # past what these runs held out
            break
        cells = []
        for lo, hi in ((f, 2 * f), (0.0, f)):  # val, test
            chosen = [rows[p] for p, u in units.items() if lo <= u < hi]
            nbytes = np.array([r["bytes"] for r in chosen], dtype=np.float64)
            bits = np.array([BPB.numer(r) for r in chosen])
            ci = ratio_interval(bits, nbytes, resample_counts(len(chosen), RESAMPLES, SEED))
            mean = bits.sum() / nbytes.sum()
            cells += [f"{len(chosen)}", f"{nbytes.sum() / 1e6:.2f} MB",
                      f"±{(ci[1] - ci[0]) / 2 / mean:.1%}" if ci else "n/a"]
        print(f"| {f:.2f} | " + " | ".join(cells) + " |")


def seed_noise(runs: list[Run]) -> None:
    for split in ("val", "test"):
        name = f"{split}.ndjson"
        units = [r["path"] for r in runs[0].rows[name] or []]
        numer, denom = matrices(BPB, name, runs, units)
        per_run = numer.sum(axis=1) / denom.sum()
        print(f"\n{split}: {len(units)} documents; bits per byte of each seed: "
              + ", ".join(f"{x:.4f}" for x in per_run)
              + (f"; run-to-run sd {per_run.std(ddof=1):.4f} ({per_run.std(ddof=1) / per_run.mean():.2%})"
                 if len(runs) > 1 else ""))
        pairs = list(itertools.combinations(range(len(runs)), 2))
        for i, j in pairs:
            d = paired_difference(numer[i], numer[j], denom, resamples=RESAMPLES, seed=SEED, alpha=ALPHA)
            assert d.interval is not None
            print(f"  {runs[j].name} - {runs[i].name}: {d.diff:+.4f} ({d.diff / d.a:+.2%}) "
                  f"[{d.interval[0]:+.4f}, {d.interval[1]:+.4f}], sign-flip p {d.p:.4f}")
        if len(runs) < 2:
            continue
        sd = per_run.std(ddof=1)
        # the document part of one pair's difference: bootstrap variance over documents, averaged over pairs
        counts = resample_counts(len(units), RESAMPLES, SEED)
        resamples = [ratio_resamples(numer[j] - numer[i], denom, counts) for i, j in pairs]
        var_pair = float(np.mean([np.var(r, ddof=1) for r in resamples if r is not None]))
        print(f"  smallest change detectable at p < {ALPHA:g}, k seeds a side:")
        for k in range(1, 6):
            measured = ""
            if 2 * k <= len(runs):
                d = paired_difference(numer[:k], numer[k:2 * k], denom, resamples=RESAMPLES, seed=SEED,
                                      alpha=ALPHA)
                measured = f" (codex compare, seeds {k} against {k}: {d.detectable:.4f})"
            if k == 1:
                print(f"    k=1: a single pair cannot separate a change from seed noise; seed noise alone "
                      f"is {np.sqrt(2) * sd:.4f} (sd of one pair's difference){measured}")
                continue
            var_seed, var_docs = sd ** 2 * 2 / k, var_pair / k
            df = (var_seed + var_docs) ** 2 / (var_seed ** 2 / (2 * k - 2) + var_docs ** 2 / (len(units) - 1))
            mde = float(sps.t.ppf(1 - ALPHA / 2, df)) * float(np.sqrt(var_seed + var_docs))
            print(f"    k={k}: {mde:.4f} ({mde / per_run.mean():.2%}){measured}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", default="workspace", help="runs of one config, seeds apart: A1,A2,...")
    ap.add_argument("--held-out", type=float, default=0.1,
                    help="the runs' data.val_fraction (= data.test_fraction)")
    ap.add_argument("--fractions", default="0.02,0.04,0.06,0.08,0.10")
    args = ap.parse_args()
    names = split_side(args.runs)
    loaded = load_runs(names, ["val.ndjson", "test.ndjson"])
    runs = [loaded[n] for n in names]
    for run in runs:
        if run.rows["val.ndjson"] is None:
            raise SystemExit(f"bench_held_out: {run.source} has no metrics/eval/val.ndjson")
    print(f"runs: {', '.join(r.source for r in runs)}; in {Path.cwd()}\n")
    sizes(runs[0], [float(f) for f in args.fractions.split(",")], args.held_out)
    seed_noise(runs)


if __name__ == "__main__":
    main()
