"""Pair two sides' rows item by item and measure each metric's difference (stats/paired.py).

Rows pair by the metric's item fields; the two runs scored the same items when both have exactly the
same items and every item's `same` fields agree (a document's byte count, a sampled line's text).
For the headline metric (bits per byte) anything else stops the comparison with one message: a
difference over different documents is not paired, and mostly measures which documents fell where.
For the others a mismatch skips that metric, with a note that says why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from codex_ml.compare.metrics import METRICS, Metric, Row
from codex_ml.compare.runs import Run
from codex_ml.runtime import StageError
from codex_ml.stats.paired import Difference, paired_difference


@dataclass(frozen=True)
class Moved:
    """One unit's part in the difference."""

    unit: str
    denom: float  # its bytes (samples, problems)
    a: float  # its metric in A (mean over A's runs)
    b: float
    share: float  # its contribution to B - A: the unit's difference over the whole denominator


@dataclass(frozen=True)
class Result:
    metric: Metric
    split: str
    diff: Difference
    moved: list[Moved]
    verdict: str


@dataclass
class Comparison:
    a: list[Run]
    b: list[Run]
    alpha: float
    results: list[Result] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def compare(a: Sequence[Run], b: Sequence[Run], *, resamples: int, seed: int, alpha: float, top: int,
            metrics: Sequence[Metric] = METRICS) -> Comparison:
    out = Comparison(list(a), list(b), alpha)
    runs = [*a, *b]
    for metric in metrics:
        for split, name in metric.files():
            where = f"{metric.name}{f', {split}' if split else ''}"
            present = [r for r in runs if r.rows.get(name) is not None]
            if not present:
                continue
            if len(present) < len(runs):
                missing = next(r for r in runs if r.rows.get(name) is None)
                problem = f"{missing.source} has no metrics/eval/{name}"
                if metric.headline:
                    raise StageError(f"{problem}, which {present[0].source} has: no per-document rows to "
                                     "pair (run the eval stage there, or compare runs that both have it)")
                out.notes.append(f"{where}: not compared: {problem}")
                continue
            mismatch = check_same_items(metric, name, runs)
            if mismatch:
                if metric.headline:
                    raise StageError(f"{mismatch}. A paired comparison needs the same held-out documents: "
                                     "compare runs made on the same split of the data")
                out.notes.append(f"{where}: not compared: {mismatch}")
                continue
            out.results.append(measure(metric, split, name, a, b, resamples=resamples, seed=seed,
                                       alpha=alpha, top=top))
    if not any(r.metric.headline for r in out.results):
        runs_text = ", ".join(r.source for r in runs)
        files = ", ".join(f"metrics/eval/{f}" for m in metrics if m.headline for _, f in m.files())
        raise StageError(f"no per-document rows in {runs_text} ({files}): run the eval stage first")
    prepared = {r.prepared for r in runs if r.prepared}
    if len(prepared) > 1:
        out.notes.append("data/prepared differs between the runs (dvc.lock), but their held-out documents "
                         "have the same paths and sizes: compared as the same documents")
    return out


def _items(metric: Metric, rows: list[Row], where: str) -> dict[tuple[object, ...], Row]:
    try:
        items = {tuple(r[k] for k in metric.item): r for r in rows}
    except KeyError as exc:
        raise StageError(f"{where}: a row without the field {exc.args[0]!r}") from None
    if len(items) != len(rows):
        raise StageError(f"{where}: {len(rows) - len(items)} rows repeat an item ({', '.join(metric.item)})")
    return items


def check_same_items(metric: Metric, name: str, runs: Sequence[Run]) -> str | None:
    """None when every run has the same items with the same `same` fields; else what differs."""
    first = runs[0]
    ref = _items(metric, first.rows[name] or [], f"{first.source}: metrics/eval/{name}")
    for run in runs[1:]:
        items = _items(metric, run.rows[name] or [], f"{run.source}: metrics/eval/{name}")
        both = ref.keys() & items.keys()
        changed = sum(1 for k in both if any(ref[k].get(f) != items[k].get(f) for f in metric.same))
        if len(both) == len(ref) == len(items) and not changed:
            continue
        detail = (f"{len(ref)} and {len(items)} {metric.units}, {len(both)} in both"
                  + (f", {changed} of them with another {'/'.join(metric.same)}" if changed else ""))
        hashes = (f" (data/prepared {first.prepared[:7]} and {run.prepared[:7]} in dvc.lock)"
                  if first.prepared and run.prepared and first.prepared != run.prepared else "")
        return (f"{first.source} and {run.source} did not score the same {metric.units} in "
                f"metrics/eval/{name}: {detail}{hashes}")
    return None


def matrices(metric: Metric, name: str, runs: Sequence[Run], units: list[str]
             ) -> tuple[np.ndarray, np.ndarray]:
    """[runs, units] summed numerators, and [units] denominators (the same in every run: checked)."""
    index = {u: i for i, u in enumerate(units)}
    numer = np.zeros((len(runs), len(units)))
    denom = np.zeros(len(units))
    for j, run in enumerate(runs):
        for row in run.rows[name] or []:
            i = index[metric.per_unit(row)]
            numer[j, i] += metric.numer(row)
            if j == 0:
                denom[i] += metric.denom(row)
    return numer, denom


def measure(metric: Metric, split: str, name: str, a: Sequence[Run], b: Sequence[Run], *, resamples: int,
            seed: int, alpha: float, top: int) -> Result:
    units = list(dict.fromkeys(metric.per_unit(r) for r in a[0].rows[name] or []))
    numer, denom = matrices(metric, name, [*a, *b], units)
    k = len(a)
    diff = paired_difference(numer[:k], numer[k:], denom, resamples=resamples, seed=seed, alpha=alpha)
    per_unit = numer[k:].mean(axis=0) - numer[:k].mean(axis=0)
    total = float(denom.sum())
    moved_units = (i for i in range(len(units)) if per_unit[i] != 0)
    order = sorted(moved_units, key=lambda i: (-abs(per_unit[i]), units[i]))
    moved = [Moved(units[i], float(denom[i]), float(numer[:k, i].mean() / denom[i]),
                   float(numer[k:, i].mean() / denom[i]), float(per_unit[i] / total)) for i in order[:top]]
    return Result(metric, split, diff, moved, verdict(metric, diff, alpha))


def verdict(metric: Metric, d: Difference, alpha: float) -> str:
    if d.p is None:
        return "no test (0 resamples)"
    if d.p >= alpha or d.diff == 0:
        return f"no difference at p < {alpha:g}"
    better = (d.diff < 0) == metric.lower_is_better
    return f"B {'better' if better else 'worse'} (p < {alpha:g})"
