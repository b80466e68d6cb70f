"""The report's sections, one function each, in page order; each adds its blocks to the `Report`.

Inputs a run may lack (a stage's metrics file, a training series, the line completions) become a
statement saying what is missing and why it matters; no number is ever filled in.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from codex_ml.cards.dataset import changed, describe, dropped, licenses_of
from codex_ml.handoffs import WIDE_RATIO
from codex_ml.params import ReportParams
from codex_ml.paths import HELD_OUT, SPLITS
from codex_ml.report import hygiene, provenance
from codex_ml.report.document import Code, CodeBlock, Figure, Heading, Inline, Link, Note, Para, Report, Table
from codex_ml.report.format import diff_value, flatten, missing, num, percent, with_ci
from codex_ml.report.inputs import Paths, get, read_json, read_ndjson, read_tsv_series
from codex_ml.report.svg import Interval, Series, interval_chart, line_chart
from codex_ml.runtime import StageError

THIS_STAGE = "report"

# Training curves: (figure name, title, y label, x axis, [(dvclive metric, legend label)]). System
# telemetry is sampled by a background thread on its own clock, so it is drawn against time.
CURVES = [
    ("loss", "Loss", "loss (nats/token)", "step", [("train/loss", "train"), ("val/loss", "val")]),
    ("learning_rate", "Learning rate", "learning rate", "step", [("train/learning_rate", "learning rate")]),
    ("tokens_per_s", "Training throughput", "tokens/s", "step", [("train/tokens_per_s", "tokens/s")]),
    ("grad_norm", "Gradient norm", "norm (before clipping)", "step", [("train/grad_norm", "grad norm")]),
    ("cpu", "CPU", "usage (%)", "time", [("system/cpu/usage (%)", "CPU usage")]),
    ("ram", "RAM", "used (GB)", "time", [("system/ram/usage (GB)", "RAM used")]),
]


def summary_section(r: Report, ev: Any) -> None:
    val = get(ev, "val")
    if not isinstance(val, dict):
        r.add(Note("No eval metrics (metrics/eval.json): the model's bits per byte cannot be shown."))
        return
    b = val.get("baselines") or {}
    tuned = "base_model_bpb" in b
    base = f"; the base model before fine-tuning: {num(b['base_model_bpb'], 4)}" if tuned else ""
    r.add(Para([f"Validation bits per byte: {with_ci(val.get('bits_per_byte'), val.get('bits_per_byte_ci'))} "
                f"(95% bootstrap interval over documents) against xz -9e {num(b.get('xz_bpb'), 4)}, "
                f"gzip -9 {num(b.get('gzip_bpb'), 4)} and a unigram model {num(b.get('unigram_bpb'), 4)} "
                f"on the same text{base}. Lower is better."
                + (f" The interval is too wide to rank models (its upper end over {WIDE_RATIO:g}x its "
                   "lower): too few or too uneven validation documents."
                   if val.get("bits_per_byte_ci_too_wide") else "")]))


def card_link(paths: Paths, card: Path, what: str) -> list[Inline]:
    """A link to a card from the report's folder, or words saying it is not there yet."""
    if not paths.at(card).is_file():
        return [f"{what}, ", Code(str(card)), ", is not written yet."]
    return [f"{what}: ", Link(str(card), os.path.relpath(card, paths.report.parent)), "."]


def data_section(r: Report, paths: Paths) -> None:
    r.add(Heading(2, "Data"))
    m = read_json(paths.at(paths.prepare))
    if m is None:
        r.add(missing(paths.prepare, "document counts, rejections and redactions are"))
        return
    what, _ = describe(m.get("source") or {})
    r.add(Para([f"Source code from {what}; prepare read {num(m.get('files_seen'))} files. ",
                *card_link(paths, paths.dataset_card, "The dataset card")]))
    docs, sizes = m.get("documents") or {}, m.get("bytes") or {}
    splits = [s for s in SPLITS if s in docs or s in sizes]
    r.add(Table(["split", "documents", "bytes"], [[s, num(docs.get(s)), num(sizes.get(s))] for s in splits],
                [False, True, True]))
    r.add(Table(["what prepare did"], [[line] for line in (*dropped(m), *changed(m))]))
    r.add(*hygiene.prepare_blocks(m))
    licenses = licenses_of(m)
    if licenses:
        r.add(Table([f"license (found by {m.get('license_detector', 'the detector')})", "documents kept"],
                    [[expression, num(n)] for expression, n in licenses.items()], [False, True]))


def tokenizer_section(r: Report, paths: Paths) -> None:
    r.add(Heading(2, "Tokenizer"))
    m = read_json(paths.at(paths.tokenize))
    if m is None:
        r.add(missing(paths.tokenize, "tokenizer statistics are"))
        return
    backend = str(m.get("backend", "not reported"))
    if m.get("model_type") and backend == "sentencepiece":
        backend += f" ({m['model_type']})"
    r.add(Para([f"Backend {backend}, vocabulary {num(m.get('vocab_size'))} tokens, token files "
                f"{m.get('dtype', 'not reported')}."]))
    per_split = ("documents", "bytes", "tokens", "tokens_per_byte", "bytes_per_token", "byte_fallback_rate")
    splits = [s for s in SPLITS if any(isinstance(m.get(k), dict) and s in m[k]
                                                        for k in per_split)]
    if splits:
        r.add(Table(["split", "documents", "bytes", "tokens", "tokens/byte", "bytes/token", "byte fallback"],
                    [[s, *(num(get(m, k, s)) for k in per_split)] for s in splits],
                    [False] + [True] * 6))
    rt, auto, checked = m.get("round_trip_exact"), m.get("autotokenizer_match"), m.get("checked_documents")
    if rt is None and auto is None:
        r.add(Note("No round-trip check was reported (an empty val split has nothing to check)."))
    else:
        r.add(Para([f"Round trip decode(encode(doc)) == doc on {percent(rt)} of the {num(checked)} val "
                    f"documents; transformers.AutoTokenizer gives the token files' ids on {percent(auto)} "
                    "of them."]))


# metrics/train/metrics.json's numbers as the training table names them (dvclive's keys on the right);
# the rest are in `dvc metrics show`
TRAIN_ROWS = (
    ("parameters", "model/parameters"), ("of them trained", "model/trainable_parameters"),
    ("steps", "train/steps"), ("tokens seen", "train/tokens_seen"), ("passes over train", "train/passes"),
    ("tokens in train", "data/train_tokens"), ("tokens in val", "data/val_tokens"),
    ("training time (s)", "train/wall_time_s"), ("throughput (tokens/s)", "train/tokens_per_s"),
    ("processes", "train/processes"), ("resumed from step", "train/resumed_from_step"),
    ("train loss at the last step (nats/token)", "train/loss"),
    ("val loss of the shipped model (nats/token)", "val/shipped_loss"),
    ("lowest val loss (nats/token)", "val/best_loss"), ("shipped", "train/shipped"),
    ("learning rate at the last step", "train/learning_rate"),
    ("gradient norm at the last step", "train/grad_norm"),
    ("model FLOPs utilisation (median)", "train/mfu_median"),
    ("CPU cores", "system/cpu/count"), ("CPU usage, last sample (%)", "system/cpu/usage (%)"),
    ("RAM used, last sample (GB)", "system/ram/usage (GB)"),
)


def train_section(r: Report, paths: Paths) -> None:
    r.add(Heading(2, "Training"))
    m = read_json(paths.at(paths.train_metrics))
    if m is None:
        r.add(missing(paths.train_metrics, "the final training metrics are"))
    else:
        flat = dict(flatten(m, sep="/"))
        rows = [[name, flat[key] if isinstance(flat[key], str) else num(flat[key])]
                for name, key in TRAIN_ROWS if key in flat]
        r.add(Table(["training", "value"], rows, [False, True]))
    r.add(Para(card_link(paths, paths.model_card, "The model card")))
    plots = paths.at(paths.train_plots)
    if not plots.is_dir():
        r.add(missing(paths.train_plots, "training curves are"))
        return
    for name, title, y_label, x_axis, metrics in CURVES:
        series, absent = [], []
        for metric, label in metrics:
            tsv = plots / f"{metric}.tsv"
            if tsv.is_file():
                xs, ys = read_tsv_series(tsv, x_axis)
                if xs:
                    series.append(Series(label, xs, ys))
                    continue
            absent.append(metric)
        if series:
            x_label = "step" if x_axis == "step" else "seconds since the first sample"
            logged = ", ".join(m for m, _ in metrics if m not in absent)
            r.add(Figure(f"train_{name}", line_chart(series, title, x_label, y_label),
                         f"{title} per {'step' if x_axis == 'step' else 'second'} (dvclive: {logged})."))
        if absent:
            r.add(Note(f"Not logged by this run: {', '.join(absent)} (no {paths.train_plots}/<name>.tsv)."))


def _eval_settings_para(settings: dict[str, Any]) -> Para:
    window, stride = settings.get("window"), settings.get("stride")
    context = (f"at least {window - stride + 1} tokens of its own document as context, or all of it"
               if isinstance(window, int) and isinstance(stride, int) else "context as recorded")
    return Para([f"Model {settings.get('architecture', '?')} with {num(settings.get('parameters'))} "
                 f"parameters; sliding windows of {num(window)} tokens with stride {num(stride)} "
                 f"(every token scored once, with {context}); {num(settings.get('bootstrap'))} bootstrap "
                 "resamples over "
                 f"documents; on {settings.get('device', '?')} with {num(settings.get('threads'))} threads."])


def eval_section(r: Report, paths: Paths, ev: Any) -> None:
    r.add(Heading(2, "Evaluation"))
    if ev is None:
        r.add(missing(paths.eval_json, "evaluation metrics are"))
        return
    settings = read_json(paths.at(paths.eval_dir / "settings.json"))
    if isinstance(settings, dict):
        r.add(_eval_settings_para(settings))
    splits = [s for s in HELD_OUT if isinstance(ev.get(s), dict)]
    rows = []
    for key, label, digits in (("bits_per_byte", "bits per byte", 4), ("loss", "loss (nats/token)", 4),
                               ("perplexity", "perplexity", 3), ("accuracy", "next-token accuracy", 4),
                               ("completion_exact_match", "line completion exact match", 3),
                               ("completion_edit_similarity", "line completion edit similarity", 3),
                               ("completion_line_bpb", "the true line's bits per byte", 4)):
        rows.append([label, *(with_ci(ev[s].get(key), ev[s].get(f"{key}_ci"), digits) for s in splits)])
    for key, label in (("documents", "documents"), ("tokens", "tokens scored"), ("bytes", "bytes"),
                       ("completion_samples", "lines completed")):
        rows.append([label, *(num(ev[s].get(key)) for s in splits)])
    r.add(Table(["metric [95% interval]", *splits], rows, [False] + [True] * len(splits)))
    base_rows = []
    tuned_from = any(get(ev, s, "baselines", "base_model_bpb") is not None for s in splits)
    for key, label in (("xz_bpb", "xz -9e"), ("gzip_bpb", "gzip -9"),
                       ("unigram_bpb", "unigram (train tokens)"),
                       *((("base_model_bpb", "base model, before fine-tuning"),) if tuned_from else ())):
        base_rows.append([label, *(num(get(ev, s, "baselines", key), 4) for s in splits)])
    r.add(Table(["baseline, bits per byte", *splits], base_rows, [False] + [True] * len(splits)))
    r.add(*hygiene.leak_blocks(ev, splits))
    bars = []
    for s in splits:
        m = ev[s]
        ci = m.get("bits_per_byte_ci") or [None, None]
        if isinstance(m.get("bits_per_byte"), (int, float)):
            bars.append(Interval(f"{s}: model", float(m["bits_per_byte"]), ci[0], ci[1], "model"))
        for key, label in (("xz_bpb", "xz -9e"), ("gzip_bpb", "gzip -9"), ("unigram_bpb", "unigram"),
                           ("base_model_bpb", "base model")):
            v = get(m, "baselines", key)
            if isinstance(v, (int, float)):
                bars.append(Interval(f"{s}: {label}", float(v), group="baseline"))
    if bars:
        chart = interval_chart(bars, "Bits per byte (lower is better)", "bits per byte")
        r.add(Figure("eval_bits_per_byte", chart,
                     "The model's bits per byte with its 95% bootstrap interval (whiskers) beside the "
                     "compressors and the unigram model on the same documents."))
    hardest = read_ndjson(paths.at(paths.eval_dir / "test.ndjson"))
    if hardest:
        ranked = sorted((d for d in hardest if isinstance(d.get("bits_per_byte"), (int, float))),
                        key=lambda d: (-d["bits_per_byte"], d["path"]))
        r.add(Para(["Test documents, hardest first (per-document rows: ",
                    Code(str(paths.eval_dir / "test.csv")), "):"]))
        r.add(Table(["document", "bytes", "tokens", "bits per byte"],
                    [[Code(str(d["path"])), num(d.get("bytes")), num(d.get("tokens")),
                      num(d["bits_per_byte"], 4)] for d in ranked[:5]], [False, True, True, True]))


def completion_section(r: Report, paths: Paths, params: ReportParams) -> None:
    r.add(Heading(2, "Sample completions"))
    path = paths.eval_dir / "test_completions.ndjson"
    rows = read_ndjson(paths.at(path))
    if rows is None:
        r.add(missing(path, "line completions are"))
        return
    if not rows or params.completion_examples == 0:
        r.add(Note("No line completions to show (eval.completion_samples or "
                   "report.completion_examples is 0)."))
        return
    chosen = ([x for x in rows if x.get("match")] + [x for x in rows if not x.get("match")])
    chosen = chosen[:params.completion_examples]
    r.add(Para([f"Greedy completions of test lines ({sum(bool(x.get('match')) for x in rows)} of {len(rows)} "
                "sampled lines matched exactly); the model saw its document up to the line; shown: the "
                "lines before it, then the line and the model's completion."]))
    for x in chosen:
        verdict = "exact match" if x.get("match") else "no match"
        r.add(Para([Code(f"{x.get('path')}:{x.get('line')}"), f" — {verdict}"]))
        wrote = str(x.get("completion", ""))
        # An empty or blank completion would be invisible in a code block: say what it was.
        shown = wrote if wrote.strip() else f"(an empty line: {json.dumps(wrote)})"
        r.add(CodeBlock(f"{x.get('context', '')}\n# --- the line:\n{x.get('target', '')}\n"
                        f"# --- the model wrote:\n{shown}"))


def diff_section(r: Report, paths: Paths, params: ReportParams,
                 run: Callable[[list[str]], subprocess.CompletedProcess[str]]) -> None:
    r.add(Heading(2, "Comparison with a baseline revision"))
    rev = params.baseline_rev
    if rev is None:
        r.add(Note("report.baseline_rev is not set: no comparison with a baseline revision."))
        return
    ok = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], cwd=paths.root,
                        capture_output=True, text=True, check=False)
    if ok.returncode != 0:
        raise StageError(f"report.baseline_rev: {rev!r} is not a commit in this git repository")
    r.add(Para(["Baseline ", Code(rev), " = ", Code(ok.stdout.strip()[:12]),
                "; the workspace is new. From ", Code(f"dvc metrics diff {rev}"), " and ",
                Code(f"dvc params diff {rev}"), "."]))
    for kind in ("metrics", "params"):
        proc = run([sys.executable, "-m", "dvc", kind, "diff", rev, "--json"])
        if proc.returncode != 0:
            raise StageError(f"dvc {kind} diff {rev} failed: {(proc.stderr or proc.stdout).strip()[:500]}")
        try:
            diff = json.loads(proc.stdout or "{}")
        except json.JSONDecodeError:
            raise StageError(f"dvc {kind} diff {rev} --json printed no JSON: {proc.stdout[:200]!r}") from None
        rows = [[Code(f), k, diff_value(v.get("old")), diff_value(v.get("new")),
                 num(v.get("diff")) if isinstance(v.get("diff"), (int, float)) else "changed"]
                for f, entries in sorted(diff.items()) for k, v in sorted(entries.items())
                if isinstance(v, dict)]
        if rows:
            r.add(Table(["file", kind.rstrip("s"), rev, "workspace", "change"], rows,
                        [False, False, True, True, True]))
        else:
            r.add(Note(f"No {kind} differ from {rev}."))


def provenance_section(r: Report, paths: Paths, settings: Any) -> None:
    r.add(Heading(2, "Provenance"))
    g = provenance.git_state(paths.root)
    if g.commit is None:
        r.add(Note(f"No git commit: {g.problem}."))
    else:
        r.add(Para(["Git commit ", Code(g.commit), "; working tree ",
                    f"dirty ({len(g.dirty)} paths changed or untracked)" if g.dirty else "clean", "."]))
        if g.dirty:
            r.add(CodeBlock("\n".join(g.dirty[:20]) + (f"\n... and {len(g.dirty) - 20} more"
                                                        if len(g.dirty) > 20 else "")))
    stages, problem = provenance.locked_stages(paths.at(paths.lock))
    stages = [s for s in stages if s.name != THIS_STAGE]  # its own entry is written after this report
    if problem:
        r.add(Note(problem))
    elif stages:
        r.add(Para(["Stages as recorded in ", Code("dvc.lock"),
                    " (stage hash: sha256 of the stage's lock entry: its command, dependencies, params and "
                    "outputs; this report stage's own entry is written after the report):"]))
        r.add(Table(["stage", "stage hash", "outputs (md5)", "command"],
                    [[s.name, Code(s.digest[:16]),
                      Code(", ".join(f"{p} {h[:12]}" for p, h in s.outs) or "none"), Code(s.cmd)]
                     for s in stages]))
        params_rows: list[list[str | Code]] = [[s.name, Code(k), Code(json.dumps(v))]
                                               for s in stages for k, v in sorted(s.params.items())]
        if params_rows:
            r.add(Table(["stage", "param", "value"], params_rows))
    r.add(Table(["package", "version"], [[n, Code(v)] for n, v in provenance.package_versions()]))
    hw = provenance.hardware()
    rows = [[k, v] for k, v in hw.items()]
    if isinstance(settings, dict):
        rows.append(["eval ran on", f"{settings.get('device', '?')}, {settings.get('threads', '?')} threads, "
                                    f"{settings.get('dtype', '?')}"])
    r.add(Table(["environment (report stage)", "value"], rows))
