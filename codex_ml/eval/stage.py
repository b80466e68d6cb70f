"""The eval stage's work: score val and test, sample line completions, compute baselines and intervals,
write `metrics/eval.json` and the per-document rows.

`metrics/eval.json` (keys in docs/pipeline.md; `_ci` siblings are 95% bootstrap intervals over documents,
null when `eval.bootstrap` is 0 or no interval is defined):

    {"val": {"loss", "loss_ci", "perplexity", "perplexity_ci", "bits_per_byte", "bits_per_byte_ci",
             "accuracy", "accuracy_ci", "completion_exact_match", "completion_exact_match_ci",
             "completion_samples", "completion_edit_similarity", "completion_edit_similarity_ci",
             "completion_line_bpb", "completion_line_bpb_ci", "documents", "tokens", "bytes",
             "baselines": {"gzip_bpb", "xz_bpb", "unigram_bpb", "base_model_bpb"},
             "leak": {"near_duplicate_documents", "bytes_fraction", "threshold", "examples"} or null,
             "infill": {"line": {...}, "block": {...}}},
     "test": {... the same ...}}

`infill` (eval/editor.py, docs/fim.md): per span kind, `exact_match`, `edit_similarity` (of written
middles), `middle_bpb_l2r` and `middle_bpb_fim` (the true middle without and with the suffix) and
`suffix_gain_bpb`, their paired difference, each with its `_ci`; `samples`, `documents`, `mode`.

Baselines sit inside each split because they are numbers *of that split's text*: a reader compares
`val.bits_per_byte` with `val.baselines.xz_bpb`, and `dvc metrics show` prints them side by side.
`base_model_bpb` is there when models/model was fine-tuned from a pretrained model: that base model,
scored by the same scorer on the same tokens and windows, so "did fine-tuning help?" is one number.
`leak` (eval/leak.py) counts the split's documents with a near-duplicate in train; null without a train
split (`codex eval --data` scoring a whole corpus) or with `eval.leak_audit` false.
`loss` is nats per token; bits per byte is the total NLL in bits over all UTF-8 bytes of the split's
documents, so it compares across tokenizers and with the compressors.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from codex_ml import kernels
from codex_ml.eval import baselines
from codex_ml.eval.completion import LineSample, complete_lines, is_match, sample_lines
from codex_ml.eval.editor import (
    closeness_metrics,
    infill_line,
    infill_settings,
    infill_split,
    line_closeness,
)
from codex_ml.eval.infill import InfillSettings
from codex_ml.eval.inputs import (
    Document,
    EvalInputs,
    check_same_documents,
    encode_prepared,
    load_prepared,
    load_token_split,
)
from codex_ml.eval.leak import leak_audit
from codex_ml.eval.model import (
    context_window,
    load_base_model,
    load_model,
    load_tokenizer,
    pick_device,
    special_ids,
)
from codex_ml.eval.options import Device
from codex_ml.eval.score import DocScores, score_documents
from codex_ml.handoffs import META_FILE, WIDE_RATIO, TokenMeta, too_wide
from codex_ml.io import atomic_dir, write_json, write_text
from codex_ml.params import EvalParams
from codex_ml.paths import HELD_OUT
from codex_ml.runtime import StageError
from codex_ml.shards import open_stream
from codex_ml.stats.bootstrap import ratio_interval, resample_counts

log = logging.getLogger(__name__)

LN2 = math.log(2.0)
ROW_FIELDS = ("path", "bytes", "tokens", "loss", "bits_per_byte", "accuracy")


@dataclass
class SplitResult:
    name: str
    metrics: dict[str, Any]
    rows: list[dict[str, Any]]
    completions: list[dict[str, Any]] = field(default_factory=list)
    infill: list[dict[str, Any]] = field(default_factory=list)  # per-span rows (eval.infill)
    messages: list[dict[str, Any]] = field(default_factory=list)  # HumanEval's, kept out of git


def split_seed(seed: int, split: str) -> list[int]:
    """Independent, stable random streams per split and purpose."""
    return [seed, zlib.crc32(split.encode("utf-8"))]


def _interval(ci: tuple[float, float] | None, fn: Any = None) -> list[float] | None:
    if ci is None:
        return None
    return [fn(ci[0]), fn(ci[1])] if fn else [ci[0], ci[1]]


def split_metrics(scores: DocScores, nbytes: np.ndarray, matches: np.ndarray, samples: np.ndarray,
                  resamples: int, seed: list[int]) -> dict[str, Any]:
    """Point estimates and bootstrap intervals; `matches`/`samples` are per-document completion counts."""
    tokens, nll, correct = scores.tokens.astype(np.float64), scores.nll, scores.correct.astype(np.float64)
    counts = resample_counts(len(tokens), resamples, seed)
    loss = float(nll.sum() / tokens.sum())
    loss_ci = ratio_interval(nll, tokens, counts)
    with_samples = samples > 0
    # Line completion resamples the documents that had lines sampled (the others have nothing to
    # contribute): its own draws, from its own seeded stream.
    em_counts = resample_counts(int(with_samples.sum()), resamples, [*seed, 2])
    bpb_ci = _interval(ratio_interval(nll / LN2, nbytes, counts))
    out: dict[str, Any] = {
        "loss": loss,
        "loss_ci": _interval(loss_ci),
        "perplexity": math.exp(loss),
        "perplexity_ci": _interval(loss_ci, math.exp),  # exp is monotone: the loss interval maps over
        "bits_per_byte": float(nll.sum() / LN2 / nbytes.sum()),
        "bits_per_byte_ci": bpb_ci,
        # upper end over WIDE_RATIO x the lower (handoffs.py): too few or too uneven documents
        "bits_per_byte_ci_too_wide": too_wide(bpb_ci),
        "accuracy": float(correct.sum() / tokens.sum()),
        "accuracy_ci": _interval(ratio_interval(correct, tokens, counts)),
        "completion_samples": int(samples.sum()),
        "completion_exact_match": float(matches.sum() / samples.sum()) if samples.sum() else None,
        "completion_exact_match_ci": _interval(ratio_interval(matches[with_samples], samples[with_samples],
                                                              em_counts)) if samples.sum() else None,
        "documents": len(tokens),
        "tokens": int(tokens.sum()),
        "bytes": int(nbytes.sum()),
    }
    return out


def evaluate_split(model: torch.nn.Module, tokenizer: Any, name: str, docs: list[Document], texts: list[str],
                   unigram_log2p: np.ndarray | None, params: EvalParams, *, window: int, stride: int,
                   eos_id: int, pad_id: int, device: torch.device,
                   base: torch.nn.Module | None = None, infill: InfillSettings | None = None) -> SplitResult:
    if not docs:
        raise StageError(f"split {name!r} has no documents: nothing to evaluate "
                         "(raise data.val_fraction / data.test_fraction)")
    scores = score_documents(model, [d.ids for d in docs], window=window, stride=stride,
                             batch_size=params.batch_size, eos_id=eos_id, pad_id=pad_id, device=device,
                             desc=f"eval {name}")
    samples: list[LineSample] = sample_lines(texts, params.completion_samples,
                                             [*split_seed(params.seed, name), 1])
    completions = complete_lines(model, tokenizer, texts, samples, window=window,
                                 max_new_tokens=params.completion_tokens_in(window),
                                 batch_size=params.batch_size, eos_id=eos_id, pad_id=pad_id, device=device,
                                 desc=f"completion {name}") if samples else []
    matched = [is_match(c, s.target) for c, s in zip(completions, samples, strict=True)]
    n_docs = len(docs)
    per_doc_matches = np.bincount([s.doc for s, m in zip(samples, matched, strict=True) if m],
                                  minlength=n_docs).astype(np.float64)
    per_doc_samples = np.bincount([s.doc for s in samples], minlength=n_docs).astype(np.float64)
    nbytes = np.array([d.nbytes for d in docs], dtype=np.float64)
    metrics = split_metrics(scores, nbytes, per_doc_matches, per_doc_samples, params.bootstrap,
                            split_seed(params.seed, name))
    similarity, line_bits, line_bytes = line_closeness(
        model, tokenizer, texts, samples, completions, window=window, batch_size=params.batch_size,
        eos_id=eos_id, pad_id=pad_id, device=device)
    metrics |= closeness_metrics(samples, similarity, line_bits, line_bytes, n_docs, params.bootstrap,
                                 split_seed(params.seed, name))
    infill_rows: list[dict[str, Any]] = []
    if infill is not None:
        metrics["infill"], infill_rows = infill_split(model, tokenizer, name, texts, [d.path for d in docs],
                                                      params, infill, split_seed(params.seed, name))
    text_bytes = "".join(texts).encode("utf-8")
    unigram = None if unigram_log2p is None else \
        sum(baselines.unigram_bits(unigram_log2p, d.ids) for d in docs) / float(nbytes.sum())
    metrics["baselines"] = {"gzip_bpb": baselines.gzip_bpb(text_bytes),
                            "xz_bpb": baselines.xz_bpb(text_bytes), "unigram_bpb": unigram}
    if base is not None:
        base_scores = score_documents(base, [d.ids for d in docs], window=window, stride=stride,
                                      batch_size=params.batch_size, eos_id=eos_id, pad_id=pad_id,
                                      device=device, desc=f"eval {name} (base model)")
        metrics["baselines"]["base_model_bpb"] = float(base_scores.nll.sum() / LN2 / nbytes.sum())
    rows = [{"path": d.path, "bytes": d.nbytes, "tokens": int(scores.tokens[i]),
             "loss": float(scores.nll[i] / scores.tokens[i]),
             "bits_per_byte": float(scores.nll[i] / LN2 / d.nbytes) if d.nbytes else None,
             "accuracy": float(scores.correct[i] / scores.tokens[i])}
            for i, d in enumerate(docs)]
    records = []
    for i, (s, c, m) in enumerate(zip(samples, completions, matched, strict=True)):
        context = texts[s.doc][:s.start].split("\n")[-4:-1]  # the three lines before the target
        records.append({"split": name, "path": docs[s.doc].path, "line": s.line,
                        "context": "\n".join(context), "target": s.target, "completion": c, "match": m,
                        "edit_similarity": similarity[i],
                        "bits_per_byte": line_bits[i] / line_bytes[i] if line_bytes[i] else None})
    return SplitResult(name, metrics, rows, records, infill_rows)


def rows_csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=ROW_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def ndjson(records: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in records)


def load_documents(inputs: EvalInputs, split: str, tokenizer: Any, eos_id: int
                   ) -> tuple[list[Document], list[str]]:
    records = load_prepared(inputs.prepared_dir, split)
    if inputs.retokenize:
        docs = encode_prepared(records, tokenizer, eos_id)
    else:
        docs = load_token_split(inputs.tokens_dir, split)
        check_same_documents(docs, records, str(inputs.tokens_dir / META_FILE),
                             str(inputs.prepared_dir / f"{split}-*.jsonl"))
    return docs, [r["text"] for r in records]


def train_ids(inputs: EvalInputs, tokenizer: Any, eos_id: int) -> Iterable[np.ndarray]:
    """The train split's token stream, shard by shard, for the unigram baseline."""
    if inputs.retokenize:
        records = load_prepared(inputs.prepared_dir, "train")
        return (d.ids for d in encode_prepared(records, tokenizer, eos_id))
    return open_stream(inputs.tokens_dir, TokenMeta.load(inputs.tokens_dir), "train").chunks()


def resolve_window(model: torch.nn.Module, params: EvalParams, train_seq_len: int | None) -> int:
    """Tokens per window: `eval.window` if set, else the context the model was trained on
    (`train.final_seq_len`, else `train.seq_len`), else its config's maximum. A RoPE model trained on
    256 tokens but built for 2048 positions is worse, not better, on windows longer than it ever saw."""
    limit = context_window(model)
    if params.window > limit:
        raise StageError(f"eval.window: expected <= the model's {limit} positions, got {params.window}")
    wanted = params.window_for(train_seq_len or 0)
    return min(wanted, limit) if wanted else limit


def token_ids(inputs: EvalInputs, model: torch.nn.Module, tokenizer: Any) -> tuple[int, int, int]:
    """(eos_id, pad_id, vocabulary of the unigram baseline): the token files' (meta.json), checked to fit
    the model and its tokenizer; with `retokenize`, the tokenizer's own."""
    vocab = int(model.get_output_embeddings().weight.shape[0])  # type: ignore[operator]
    if inputs.retokenize:
        eos_id, pad_id = special_ids(tokenizer, model)
        return eos_id, pad_id, max(vocab, len(tokenizer))
    meta = TokenMeta.load(inputs.tokens_dir)
    if meta.vocab_size > vocab:
        raise StageError(f"{inputs.tokens_dir / META_FILE}: vocab_size {meta.vocab_size} exceeds the "
                         f"model's {vocab} outputs ({inputs.model_dir}): a different tokenizer? "
                         "(codex eval --retokenize encodes the prepared text with the model's own)")
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id != meta.eos_id:
        raise StageError(f"{inputs.tokens_dir / META_FILE}: eos_id {meta.eos_id} differs from the "
                         f"tokenizer's {tokenizer.eos_token_id} ({inputs.model_dir}): a different tokenizer?")
    return meta.eos_id, meta.pad_id, meta.vocab_size


def run_eval(params: EvalParams, inputs: EvalInputs, splits: tuple[str, ...] = HELD_OUT,
             device: Device = "auto", train_seq_len: int | None = None
             ) -> tuple[dict[str, Any], list[SplitResult], dict[str, Any]]:
    """Evaluate `splits`; returns (metrics by split, per-split results, settings used)."""
    if params.threads:
        torch.set_num_threads(params.threads)
    used_kernels = kernels.check(params.kernels, "eval.kernels")
    dev = pick_device(device)
    model = load_model(inputs.model_dir, dev)
    tokenizer = load_tokenizer(inputs.model_dir, inputs.tokenizer_dir)
    base = load_base_model(inputs.model_dir, dev)
    eos_id, pad_id, unigram_vocab = token_ids(inputs, model, tokenizer)
    window = resolve_window(model, params, train_seq_len)
    stride = params.stride_in(window)
    # Params validation checked these against the pipeline's model; this is any model `codex eval` reads.
    params.check_window(window, f"the model's window ({window} tokens)")
    unigram_log2p = baselines.unigram_log2_probs(train_ids(inputs, tokenizer, eos_id), unigram_vocab) \
        if splits and inputs.train_split else None
    results: list[SplitResult] = []
    held_out: dict[str, list[tuple[str, str]]] = {}
    infill = infill_settings(window, tokenizer, params, eos_id=eos_id, pad_id=pad_id, device=dev)
    for split in splits:
        docs, texts = load_documents(inputs, split, tokenizer, eos_id)
        results.append(evaluate_split(model, tokenizer, split, docs, texts, unigram_log2p, params,
                                      window=window, stride=stride, eos_id=eos_id, pad_id=pad_id,
                                      device=dev, base=base, infill=infill))
        if split != "train":  # scored against itself, train would leak everywhere
            held_out[split] = [(d.path, t) for d, t in zip(docs, texts, strict=True)]
    leaks = leak_audit(inputs.prepared_dir, held_out) if params.leak_audit and inputs.train_split \
        and held_out else {}
    for r in results:
        r.metrics["leak"] = leaks.get(r.name)
    if params.humaneval.enabled:
        from codex_ml.eval.humaneval import run_humaneval

        he_metrics, he_rows, he_messages = run_humaneval(
            model, tokenizer, params.humaneval, window=window, batch_size=params.batch_size, eos_id=eos_id,
            pad_id=pad_id, device=dev, resamples=params.bootstrap, seed=params.seed)
        results.append(SplitResult("humaneval", he_metrics, he_rows, messages=he_messages))
    if params.infill.humaneval:
        results.append(humaneval_infill(model, tokenizer, params, infill, window))
    settings = {
        "model": str(inputs.model_dir), "architecture": type(model).__name__,
        "parameters": sum(p.numel() for p in model.parameters()),
        "window": window, "stride": stride, "batch_size": params.batch_size,
        "device": str(dev), "dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
        "threads": torch.get_num_threads(), "kernels": used_kernels,
        "documents_from": "prepared text, model tokenizer"
        if inputs.retokenize else str(inputs.tokens_dir),
        "bootstrap": params.bootstrap, "completion_samples": params.completion_samples,
        "completion_max_tokens": params.completion_tokens_in(window), "seed": params.seed,
        "infill": params.infill.model_dump() | {"window": infill.window, "mode": "fim" if infill.sentinels
                                                else "l2r"},
    }
    if params.humaneval.enabled:
        settings["humaneval"] = params.humaneval.model_dump()
    return {r.name: r.metrics for r in results}, results, settings


def write_outputs(metrics: dict[str, Any], results: list[SplitResult], settings: dict[str, Any],
                  metrics_path: Path, out_dir: Path, messages_path: Path | None = None) -> None:
    """Rows first (one atomic folder swap), metrics last: metrics never describe missing rows.
    HumanEval's messages go to `messages_path` (None: humaneval.MESSAGES, under the working folder)."""
    with atomic_dir(out_dir) as tmp:
        for r in results:
            (tmp / f"{r.name}.ndjson").write_text(ndjson(r.rows), encoding="utf-8")
            if r.name.startswith("humaneval"):  # per-problem (per-task) pass/fail, for `dvc plots diff`
                table = "".join(f"{row['task_id']},{int(row['passed'])},{row['kind']}\n" for row in r.rows)
                (tmp / f"{r.name}.csv").write_text("task_id,passed,kind\n" + table, encoding="utf-8")
                continue
            if r.infill:
                (tmp / f"{r.name}_infill.ndjson").write_text(ndjson(r.infill), encoding="utf-8")
            (tmp / f"{r.name}.csv").write_text(rows_csv(r.rows), encoding="utf-8")
            (tmp / f"{r.name}_completions.ndjson").write_text(ndjson(r.completions), encoding="utf-8")
        (tmp / "settings.json").write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n",
                                           encoding="utf-8")
    write_json(metrics_path, metrics)
    write_messages(results, messages_path)


def write_messages(results: list[SplitResult], path: Path | None = None) -> None:
    """HumanEval's error messages, when kept out of the rows, to their git-ignored log."""
    for r in results:
        if r.messages:
            from codex_ml.eval.humaneval import MESSAGES

            write_text(path or MESSAGES, ndjson(r.messages))


def humaneval_infill(model: torch.nn.Module, tokenizer: Any, params: EvalParams, infill: InfillSettings,
                     window: int) -> SplitResult:
    """eval.infill.humaneval: HumanEval single-line infilling, in the sandbox with eval.humaneval's limits."""
    from codex_ml.eval.humaneval_infill import run_humaneval_infill

    if infill.sentinels is None:
        raise StageError("eval.infill.humaneval: the model's tokenizer has no fill-in-the-middle sentinel "
                         "tokens (codex_ml/fim/sentinels.py): set eval.infill.humaneval: false")
    metrics, rows = run_humaneval_infill(
        model, tokenizer, sentinels=infill.sentinels, window=window, batch_size=params.batch_size,
        eos_id=infill.eos_id, pad_id=infill.pad_id, device=infill.device, resamples=params.bootstrap,
        seed=params.seed, timeout=params.humaneval.timeout, workers=params.humaneval.workers,
        max_new_tokens=params.infill.max_new_tokens)
    return SplitResult("humaneval_infill", metrics, rows)


def summary_line(name: str, m: dict[str, Any]) -> str:
    if name == "humaneval":
        from codex_ml.eval.humaneval import summary_line as humaneval_line

        return humaneval_line(m)
    if name == "humaneval_infill":
        ci = m["pass@1_ci"]
        return (f"humaneval single-line infilling: pass@1 {m['pass@1']:.4f}"
                + (f" [{ci[0]:.4f}, {ci[1]:.4f}]" if ci else "") + f" over {m['tasks']} tasks, exact match "
                f"{m['exact_match']:.3f}")
    ci = m["bits_per_byte_ci"]
    ci_text = f" [{ci[0]:.4f}, {ci[1]:.4f}]" if ci else ""
    if m.get("bits_per_byte_ci_too_wide"):
        ci_text += (f" (interval too wide to rank models: its upper end is over {WIDE_RATIO:g}x its lower; "
                    f"few or uneven documents)")
    b = m["baselines"]
    em = m["completion_exact_match"]
    base = f"base model {b['base_model_bpb']:.4f}, " if "base_model_bpb" in b else ""
    unigram = "n/a (no train split)" if b["unigram_bpb"] is None else f"{b['unigram_bpb']:.4f}"
    return (f"{name}: bits/byte {m['bits_per_byte']:.4f}{ci_text} ({base}xz -9e {b['xz_bpb']:.4f}, "
            f"gzip -9 {b['gzip_bpb']:.4f}, unigram {unigram}); loss {m['loss']:.4f}, "
            f"perplexity {m['perplexity']:.2f}, accuracy {m['accuracy']:.4f}, line exact match "
            + (f"{em:.3f} of {m['completion_samples']} (edit similarity "
               f"{m['completion_edit_similarity']:.3f}, {m['completion_line_bpb']:.3f} bits/byte)"
               if em is not None else "not measured")
            + (f"\n{infill_line(name, m['infill'])}" if m.get("infill") else ""))
