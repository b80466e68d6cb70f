"""A comparison as text for a terminal, or as markdown for a pull-request comment (`--md`)."""

from __future__ import annotations

from codex_ml.compare.pairing import Comparison, Result
from codex_ml.compare.runs import Run
from codex_ml.stats.bootstrap import LEVEL


def side(runs: list[Run]) -> str:
    if len(runs) == 1:
        return runs[0].source
    return f"{len(runs)} runs pooled: " + ", ".join(r.source for r in runs)


def p_text(p: float | None) -> str:
    if p is None:
        return "n/a"
    return "<0.0001" if p < 1e-4 else f"{p:.4f}"


def number(x: float, digits: int, signed: bool = False) -> str:
    return f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"


def diff_text(r: Result) -> str:
    d, n = r.diff, r.metric.digits
    rel = f" ({d.diff / d.a:+.2%})" if d.a else ""
    return number(d.diff, n, signed=True) + rel


def interval_text(r: Result) -> str:
    i, n = r.diff.interval, r.metric.digits
    return "n/a" if i is None else f"[{number(i[0], n, True)}, {number(i[1], n, True)}]"


def title(r: Result) -> str:
    return f"{r.metric.name}{f', {r.split}' if r.split else ''}"


def how(r: Result, alpha: float) -> str:
    d = r.diff
    test = d.test.replace("units", r.metric.units)
    seed = f"; run-to-run sd {d.seed_sd:.{r.metric.digits}f}" if d.seed_sd is not None else ""
    detect = (f"; smallest difference detectable at p < {alpha:g}: {d.detectable:.{r.metric.digits}f}"
              if d.detectable is not None else "")
    return test + seed + detect


def text(c: Comparison) -> str:
    lines = [f"A: {side(c.a)}", f"B: {side(c.b)}"]
    for r in c.results:
        d, n = r.diff, r.metric.digits
        better = "lower" if r.metric.lower_is_better else "higher"
        lines += ["", f"{title(r)} ({d.units} {r.metric.units}; {better} is better)",
                  f"  A {number(d.a, n)}  B {number(d.b, n)}  B-A {diff_text(r)}  "
                  f"{LEVEL:.0%} {interval_text(r)}  p {p_text(d.p)}: {r.verdict}",
                  f"  {how(r, c.alpha)}"]
        if r.moved:
            lines.append(f"  moved most: {'B-A share':>10} {'size':>9} {'A':>8} {'B':>8}  "
                         f"{r.metric.units[:-1]}")
            lines += [f"  {'':11}{m.share:+10.{n}f} {m.denom:9,.0f} {m.a:8.{n}f} {m.b:8.{n}f}  {m.unit}"
                      for m in r.moved]
    lines += [f"note: {note}" for note in c.notes]
    return "\n".join(lines) + "\n"


def markdown(c: Comparison) -> str:
    out = [f"**A**: {side(c.a)}  ", f"**B**: {side(c.b)}", "",
           f"| metric | A | B | B − A | {LEVEL:.0%} interval | p | verdict |",
           "|---|---:|---:|---:|---|---:|---|"]
    for r in c.results:
        d, n = r.diff, r.metric.digits
        out.append(f"| {title(r)} | {number(d.a, n)} | {number(d.b, n)} | {diff_text(r)} | "
                   f"{interval_text(r)} | {p_text(d.p)} | {r.verdict} |")
    out.append("")
    out += [f"- {title(r)}: {how(r, c.alpha)}" for r in c.results]
    for r in c.results:
        if not r.moved or not r.metric.headline:
            continue
        n = r.metric.digits
        out += ["", f"{title(r)}: the {r.metric.units} that moved most", "",
                f"| {r.metric.units[:-1]} | size | A | B | share of B − A |", "|---|---:|---:|---:|---:|"]
        out += [f"| `{m.unit}` | {m.denom:,.0f} | {m.a:.{n}f} | {m.b:.{n}f} | {m.share:+.{n}f} |"
                for m in r.moved]
    if c.notes:
        out += [""] + [f"- note: {note}" for note in c.notes]
    return "\n".join(out) + "\n"
