"""What the eval stage measures the way an editor uses a model (docs/fim.md): infilling of masked lines
and blocks in each held-out split (eval.infill; eval/infill.py), how close line completion came (edit
similarity and the true line's bits per byte beside exact match), and HumanEval single-line infilling
(eval.infill.humaneval; eval/humaneval_infill.py).

A model whose tokenizer has FIM sentinels (codex_ml/fim/sentinels.py) is prompted with prefix and
suffix; one without them writes left to right from the prefix (`mode: "l2r"`), and its middles are
scored left to right only.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from codex_ml.eval.completion import LineSample, prompt_ids
from codex_ml.eval.infill import LN2, InfillSettings, run_kind, score_continuations
from codex_ml.eval.infill_spans import edit_similarity
from codex_ml.fim.sentinels import find_sentinels
from codex_ml.handoffs import infill_text
from codex_ml.params import EvalParams
from codex_ml.stats.bootstrap import ratio_interval, resample_counts


def infill_settings(model_window: int, tokenizer: Any, params: EvalParams, *, eos_id: int, pad_id: int,
                    device: torch.device) -> InfillSettings:
    found = find_sentinels(tokenizer)
    return InfillSettings(window=min(params.infill.window, model_window), batch_size=params.batch_size,
                          eos_id=eos_id, pad_id=pad_id, device=device,
                          sentinels=found.ids() if found else None, resamples=params.bootstrap,
                          max_new_tokens=params.infill.max_new_tokens)


def infill_split(model: torch.nn.Module, tokenizer: Any, name: str, texts: list[str], paths: list[str],
                 params: EvalParams, settings: InfillSettings, seed: list[int]
                 ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """eval.infill's line and block spans of one split: ({kind: metrics}, per-span rows)."""
    p = params.infill
    metrics: dict[str, Any] = {}
    rows: list[dict[str, Any]] = []
    for k, (kind, n, write) in enumerate((("line", p.line, True), ("block", p.block, p.write_blocks))):
        if n:
            metrics[kind], kind_rows = run_kind(model, tokenizer, texts, paths, kind, n, [*seed, 4 + k],
                                                settings, split=name, write=write)
            rows += kind_rows
    return metrics, rows


def line_closeness(model: torch.nn.Module, tokenizer: Any, texts: list[str], samples: list[LineSample],
                   completions: list[str], *, window: int, batch_size: int, eos_id: int, pad_id: int,
                   device: torch.device) -> tuple[list[float], list[float], list[int]]:
    """Per sampled line: edit similarity of the completion to it, and the bits of the true line (its
    tokens encoded alone) after the completion's prompt, with its UTF-8 bytes."""
    similarity = [edit_similarity(c, s.target) for c, s in zip(completions, samples, strict=True)]
    # a line is scored after at least one token of context (a line longer than the window: its start)
    targets = [list(tokenizer(s.target, add_special_tokens=False)["input_ids"])[:window - 1] for s in samples]
    contexts = [prompt_ids(tokenizer, texts[s.doc][:s.start], eos_id, window - len(t))
                for s, t in zip(samples, targets, strict=True)]
    nll = score_continuations(model, contexts, targets, batch_size=batch_size, pad_id=pad_id, device=device,
                              desc="completion bpb") if samples else np.zeros(0)
    nbytes = [len(s.target.encode("utf-8")) for s in samples]
    return similarity, [float(x / LN2) for x in nll], nbytes


def closeness_metrics(samples: list[LineSample], similarity: list[float], bits: list[float],
                      nbytes: list[int], n_docs: int, resamples: int, seed: list[int]) -> dict[str, Any]:
    """completion_edit_similarity and completion_line_bpb with intervals over the documents that had
    lines sampled, on exact match's resamples (the same seeded stream), so the three are paired."""
    docs = [s.doc for s in samples]
    if not docs:
        return {"completion_edit_similarity": None, "completion_edit_similarity_ci": None,
                "completion_line_bpb": None, "completion_line_bpb_ci": None}
    used = np.flatnonzero(np.bincount(docs, minlength=n_docs))
    counts = resample_counts(len(used), resamples, [*seed, 2])

    def per_doc(values: list[float] | list[int]) -> np.ndarray:
        return np.bincount(docs, weights=values, minlength=n_docs)[used]

    ones, byte_sums = per_doc([1.0] * len(docs)), per_doc(nbytes)
    out: dict[str, Any] = {}
    for key, numer, denom in (("completion_edit_similarity", per_doc(similarity), ones),
                              ("completion_line_bpb", per_doc(bits), byte_sums)):
        ci = ratio_interval(numer, denom, counts)
        out[key] = float(numer.sum() / denom.sum()) if denom.sum() > 0 else None
        out[f"{key}_ci"] = [ci[0], ci[1]] if ci else None
    return out


def infill_line(name: str, m: dict[str, Any]) -> str:
    """One line of the summary for a split's infilling metrics."""
    parts = [f"{kind} ({k['samples']}) {infill_text(k)}" for kind, k in m.items()]
    return f"{name} infilling: " + "; ".join(parts) if parts else f"{name} infilling: not measured"
