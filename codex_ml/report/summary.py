"""`codex summary`: the few lines a person reads after `make repro`.

`dvc metrics show` prints every number as one table some 100 columns wide; what a person wants first
is whether the model beats the compressors on held-out code (bits per byte with its interval beside
xz, gzip and unigram), how long training ran, and where the full report is. This reads the same
metrics files as the report stage (never recomputes anything) and prints at most ~15 lines; a file a
run lacks is one line saying so, never a number.
"""

from __future__ import annotations

from typing import Any

from codex_ml.handoffs import WIDE_RATIO
from codex_ml.paths import HELD_OUT, SPLITS
from codex_ml.report.format import num, percent
from codex_ml.report.infill import infill_summary
from codex_ml.report.inputs import Paths, get, read_json


def _minutes(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


def _bpb(v: Any) -> str:
    return num(v, 3, missing="-")


def _percent(v: Any) -> str:
    return percent(v, missing="-")


def _data_line(prepare: Any) -> str:
    docs, size = get(prepare, "documents"), get(prepare, "bytes")
    source = get(prepare, "source") or {}
    python = f"Python {source['python']}" if source.get("python") else "Python"
    where = source.get("path") or f"the {python} standard library"
    counts = "/".join(f"{docs.get(s, 0):,}" for s in SPLITS) if docs else "-"
    total = sum(size.values()) / 1e6 if size else 0.0
    return f"data    {source.get('kind', '?')} ({where}): {counts} documents (train/val/test), {total:.1f} MB"


def _train_line(train: Any) -> str:
    steps, wall = get(train, "step"), get(train, "train", "wall_time_s")
    seen, params = get(train, "train", "tokens_seen"), get(train, "model", "parameters")
    rate = f"{seen / wall:,.0f} tokens/s" if seen and wall else "-"
    mfu = get(train, "train", "mfu_median")  # only where the device's peak was known (a GPU)
    rate += f" ({_percent(mfu)} MFU)" if isinstance(mfu, (int, float)) else ""
    size = f"{params / 1e6:.1f}M parameters" if params else "? parameters"
    took = _minutes(wall) if wall else "-"
    passes = get(train, "train", "passes")
    steps_text = f"{steps or 0:,} steps"
    steps_text += f" ({passes:.2f} passes)" if isinstance(passes, (int, float)) else ""
    val = get(train, "val", "shipped_loss")
    val = val if isinstance(val, (int, float)) else get(train, "val", "loss")
    val_loss = f"; val loss {val:.3f} nats/token" if isinstance(val, (int, float)) else ""
    shipped = get(train, "train", "shipped_step")
    if isinstance(shipped, int) and shipped != steps:  # the best val checkpoint, before the last step
        val_loss += f" at step {shipped:,}, the model shipped"
    return f"train   {size}: {steps_text}, {seen or 0:,} tokens, {rate}, {took}{val_loss}"


def _eval_lines(ev: Any) -> list[str]:
    base = any(get(ev, s, "baselines", "base_model_bpb") is not None for s in HELD_OUT)
    head = f"{'split':<6}{'bits/byte [95% CI]':<24}{'xz':>7}{'gzip':>7}{'unigram':>9}"
    head += f"{'base':>7}" if base else ""
    lines = [head + "  line exact match"]
    for split in HELD_OUT:
        m = get(ev, split)
        if not m:
            continue
        ci = m.get("bits_per_byte_ci")
        interval = f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""
        b = m.get("baselines") or {}
        row = (f"{split:<6}{_bpb(m.get('bits_per_byte')) + interval:<24}{_bpb(b.get('xz_bpb')):>7}"
               f"{_bpb(b.get('gzip_bpb')):>7}{_bpb(b.get('unigram_bpb')):>9}")
        row += f"{_bpb(b.get('base_model_bpb')):>7}" if base else ""
        lines.append(row + f"  {_percent(m.get('completion_exact_match'))}")
    wide = [s for s in HELD_OUT if get(ev, s, "bits_per_byte_ci_too_wide")]
    if wide:  # handoffs.py says what too wide is
        lines.append(f"{' and '.join(wide)}: interval too wide to rank models (its upper end over "
                     f"{WIDE_RATIO:g}x its lower): too few or too uneven documents")
    return lines


def summary_lines(paths: Paths, elapsed_s: float | None = None) -> list[str]:
    """The run in brief, from the metrics files under `paths.root`."""
    lines = ["codex-ml: the run in brief (every number: dvc metrics show; the whole page: the report)"]
    prepare = read_json(paths.at(paths.prepare))
    lines.append(_data_line(prepare) if prepare else f"data    no {paths.prepare}: prepare has not run")
    train = read_json(paths.at(paths.train_metrics))
    lines.append(_train_line(train) if train else f"train   no {paths.train_metrics}: train has not run")
    ev = read_json(paths.at(paths.eval_json))
    if ev:
        lines.append("eval    bits per byte of held-out code (lower is better), beside compressors:")
        lines.extend("        " + line for line in _eval_lines(ev))
        if infill := infill_summary(ev):
            lines.append("infill  masked lines of held-out code, written between their prefix and suffix:")
            lines.extend("        " + line for line in infill)
    else:
        lines.append(f"eval    no {paths.eval_json}: eval has not run")
    named = ((paths.dataset_card, "dataset"), (paths.model_card, "model"))
    cards = [f"{card} ({what})" for card, what in named if paths.at(card).is_file()]
    lines.append(f"cards   {', '.join(cards)}" if cards else "cards   not written yet")
    report = paths.at(paths.report)
    lines.append(f"report  {report} (and report.md)" if report.is_file() else "report  not written yet")
    if elapsed_s is not None:
        lines.append(f"time    {_minutes(elapsed_s)} for this `dvc repro`")
    return lines
