"""Small, dependency-free SVG charts for the report: line charts (training curves) and interval charts
(bits per byte with its bootstrap interval beside the baselines).

SVG text, not images: the HTML inlines it (no external resources), the Markdown links the same files,
and equal data gives byte-identical figures (coordinates are printed with fixed precision).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")
FONT = "font-family=\"DejaVu Sans, Arial, sans-serif\""


@dataclass(frozen=True)
class Series:
    label: str
    xs: Sequence[float]
    ys: Sequence[float]


@dataclass(frozen=True)
class Interval:
    label: str
    value: float
    low: float | None = None
    high: float | None = None
    group: str = "model"  # colour key: "model" or "baseline"


def nice_ticks(lo: float, hi: float, target: int = 5) -> list[float]:
    """Round tick values (1, 2, 2.5, 5 x 10^k steps) covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0, 1.0]
    if hi <= lo:
        pad = abs(lo) * 0.1 or 1.0
        lo, hi = lo - pad, hi + pad
    raw = (hi - lo) / target
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    ticks = []
    v = start
    while v < hi + step * 0.5:
        ticks.append(round(v, 12))
        v += step
    return ticks


def fmt_tick(v: float) -> str:
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1e5 or a < 1e-3:
        return f"{v:.1e}"
    return f"{v:.6g}"


def _f(v: float) -> str:
    return f"{v:.2f}"


def _text(x: float, y: float, s: str, anchor: str = "middle", size: int = 12, extra: str = "") -> str:
    return (f'<text x="{_f(x)}" y="{_f(y)}" text-anchor="{anchor}" font-size="{size}" {FONT}{extra}>'
            f"{escape(s)}</text>")


def line_chart(series: Sequence[Series], title: str, x_label: str, y_label: str, width: int = 640,
               height: int = 320) -> str:
    """Lines of (x, y) points; non-finite points are skipped. One series draws no legend."""
    pts = [[(float(x), float(y)) for x, y in zip(s.xs, s.ys, strict=True)
            if math.isfinite(float(x)) and math.isfinite(float(y))] for s in series]
    all_x = [p[0] for ps in pts for p in ps]
    all_y = [p[1] for ps in pts for p in ps]
    left, right, top, bottom = 70, 20, 34, 48
    legend_h = 18 * len(series) if len(series) > 1 else 0
    pw, ph = width - left - right, height - top - bottom - legend_h
    xt = nice_ticks(min(all_x, default=0.0), max(all_x, default=1.0))
    yt = nice_ticks(min(all_y, default=0.0), max(all_y, default=1.0))
    x0, x1, y0, y1 = xt[0], xt[-1], yt[0], yt[-1]

    def sx(x: float) -> float:
        return left + (x - x0) / ((x1 - x0) or 1.0) * pw

    def sy(y: float) -> float:
        return top + ph - (y - y0) / ((y1 - y0) or 1.0) * ph

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
           f'height="{height}" role="img" aria-label="{escape(title)}">',
           f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>',
           _text(width / 2, 20, title, size=14, extra=' font-weight="bold"')]
    for t in yt:
        out.append(f'<line x1="{left}" y1="{_f(sy(t))}" x2="{left + pw}" y2="{_f(sy(t))}" stroke="#e0e0e0"/>')
        out.append(_text(left - 6, sy(t) + 4, fmt_tick(t), anchor="end", size=11))
    for t in xt:
        out.append(f'<line x1="{_f(sx(t))}" y1="{top + ph}" x2="{_f(sx(t))}" y2="{top + ph + 4}" '
                   'stroke="#444"/>')
        out.append(_text(sx(t), top + ph + 17, fmt_tick(t), size=11))
    out.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#444"/>')
    out.append(_text(left + pw / 2, top + ph + 36, x_label))
    out.append(_text(16, top + ph / 2, y_label, extra=f' transform="rotate(-90 16 {_f(top + ph / 2)})"'))
    for i, (s, ps) in enumerate(zip(series, pts, strict=True)):
        color = COLORS[i % len(COLORS)]
        if len(ps) == 1:
            out.append(f'<circle cx="{_f(sx(ps[0][0]))}" cy="{_f(sy(ps[0][1]))}" r="3" fill="{color}"/>')
        elif ps:
            coords = " ".join(f"{_f(sx(x))},{_f(sy(y))}" for x, y in ps)
            out.append(f'<polyline points="{coords}" fill="none" stroke="{color}" stroke-width="1.5"/>')
        if legend_h:
            ly = height - legend_h + 18 * i + 4
            out.append(f'<line x1="{left}" y1="{ly}" x2="{left + 24}" y2="{ly}" stroke="{color}" '
                       'stroke-width="3"/>')
            out.append(_text(left + 30, ly + 4, s.label, anchor="start", size=11))
    out.append("</svg>")
    return "\n".join(out) + "\n"


def interval_chart(rows: Sequence[Interval], title: str, x_label: str, width: int = 640) -> str:
    """One row per value: a bar from 0 to the value, and the interval as a whisker when given."""
    left, right, top, row_h = 170, 70, 34, 26
    height = top + row_h * len(rows) + 46
    pw = width - left - right
    hi = max([r.high if r.high is not None else r.value for r in rows] + [0.0])
    xt = nice_ticks(0.0, hi if hi > 0 else 1.0)
    x1 = xt[-1]

    def sx(x: float) -> float:
        return left + x / (x1 or 1.0) * pw

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
           f'height="{height}" role="img" aria-label="{escape(title)}">',
           f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>',
           _text(width / 2, 20, title, size=14, extra=' font-weight="bold"')]
    bottom = top + row_h * len(rows)
    for t in xt:
        out.append(f'<line x1="{_f(sx(t))}" y1="{top}" x2="{_f(sx(t))}" y2="{bottom}" stroke="#e0e0e0"/>')
        out.append(_text(sx(t), bottom + 16, fmt_tick(t), size=11))
    for i, r in enumerate(rows):
        y = top + row_h * i
        color = COLORS[0] if r.group == "model" else "#9e9e9e"
        out.append(_text(left - 8, y + row_h / 2 + 4, r.label, anchor="end", size=11))
        out.append(f'<rect x="{left}" y="{_f(y + 5)}" width="{_f(sx(r.value) - left)}" height="{row_h - 10}" '
                   f'fill="{color}"/>')
        if r.low is not None and r.high is not None:
            cy = y + row_h / 2
            out.append(f'<line x1="{_f(sx(r.low))}" y1="{_f(cy)}" x2="{_f(sx(r.high))}" y2="{_f(cy)}" '
                       'stroke="#000" stroke-width="1.5"/>')
            for xv in (r.low, r.high):
                out.append(f'<line x1="{_f(sx(xv))}" y1="{_f(cy - 6)}" x2="{_f(sx(xv))}" y2="{_f(cy + 6)}" '
                           'stroke="#000" stroke-width="1.5"/>')
        label_x = sx(r.high if r.high is not None else r.value) + 6
        out.append(_text(label_x, y + row_h / 2 + 4, f"{r.value:.3f}", anchor="start", size=11))
    out.append(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{bottom}" stroke="#444"/>')
    out.append(_text(left + pw / 2, bottom + 36, x_label))
    out.append("</svg>")
    return "\n".join(out) + "\n"
