"""Infilling evaluation on held-out documents: for sampled spans (infill_spans.py) the model writes the
middle from its prefix and suffix, and the true middle is scored with and without the suffix.

Per span kind (`line`, `block`) and split:
- `exact_match`, `edit_similarity`: the greedy middle, written after the FIM prompt (PSM), stopped at
  EOS or once it holds as many lines as the true middle, against the true middle. A model without
  sentinels writes it left to right from the prefix (`mode: "l2r"`);
- `middle_bpb_fim` and `middle_bpb_l2r`: bits per UTF-8 byte of the true middle's tokens after the FIM
  prompt and after the same prefix alone, and `suffix_gain_bpb`, their difference (left to right
  minus FIM: how much the suffix told the model). The middle is encoded alone in both, so both score
  the same tokens and the pair differs only in the suffix.

Every number has a 95% percentile bootstrap interval over documents (codex_ml/stats/bootstrap.py): spans
of one document are correlated, so documents are resampled, the same resamples for every number of
a kind, which pairs the two bits-per-byte numbers and their difference.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from codex_ml.eval.completion import completion_text, left_padded, newline_token_mask
from codex_ml.eval.infill_spans import (
    KINDS,
    build_prompt,
    edit_similarity,
    exact_match,
    lines_of,
    sample_spans,
)
from codex_ml.eval.score import Batch, accepts_logits_to_keep, score_batch
from codex_ml.runtime import progress
from codex_ml.stats.bootstrap import ratio_interval, resample_counts

LN2 = math.log(2.0)


def score_continuations(model: torch.nn.Module, contexts: list[list[int]], targets: list[list[int]], *,
                        batch_size: int, pad_id: int, device: torch.device, desc: str = "infill bpb"
                        ) -> np.ndarray:
    """Summed NLL (nats) of each `targets[i]` after `contexts[i]` (each pair within the window)."""
    seqs = [c + t for c, t in zip(contexts, targets, strict=True)]
    firsts = [len(c) for c in contexts]
    order = sorted(range(len(seqs)), key=lambda i: (-len(seqs[i]), i))
    out = np.zeros(len(seqs), dtype=np.float64)
    trim = accepts_logits_to_keep(model)
    batches = [order[b:b + batch_size] for b in range(0, len(order), batch_size)]
    with torch.inference_mode():
        for batch in progress(batches, desc=desc, unit="batch"):
            width = max(len(seqs[i]) for i in batch)
            inputs = np.full((len(batch), width), pad_id, dtype=np.int64)
            keep = width - min(firsts[i] - 1 for i in batch)
            rows, cols, tgt, who = [], [], [], []
            for r, i in enumerate(batch):
                inputs[r, :len(seqs[i])] = seqs[i]
                t = np.arange(firsts[i], len(seqs[i]))  # target t is predicted at column t - 1
                rows.append(np.full(len(t), r))
                cols.append(t - 1 - (width - keep))
                tgt.append(np.asarray(seqs[i], dtype=np.int64)[t])
                who.append(np.full(len(t), i))
            b = Batch(torch.from_numpy(inputs), keep, torch.from_numpy(np.concatenate(rows)),
                      torch.from_numpy(np.concatenate(cols)), torch.from_numpy(np.concatenate(tgt)),
                      np.concatenate(who))
            nll, _ = score_batch(model, b, device, trim)
            np.add.at(out, b.docs, nll)  # sequential: the same sums on every run
    return out


class _StopAfterLines:
    """Done once a row's new tokens hold `lines[row]` newlines."""

    def __init__(self, newline_ids: torch.Tensor, lines: list[int], start: int) -> None:
        self.newline_ids, self.start = newline_ids, start
        self.lines = torch.tensor(lines)

    def __call__(self, input_ids: torch.Tensor, scores: Any, **kwargs: Any) -> torch.Tensor:
        new = input_ids[:, self.start:].clamp(max=self.newline_ids.shape[0] - 1)
        seen = self.newline_ids.to(input_ids.device)[new].sum(dim=1)
        return seen >= self.lines.to(input_ids.device)


def write_middles(model: torch.nn.Module, tokenizer: Any, prompts: list[list[int]], lines: list[int], *,
                  max_new_tokens: int, batch_size: int, eos_id: int, pad_id: int, device: torch.device,
                  desc: str = "infill") -> list[str]:
    """Greedy text after each prompt, up to EOS or `lines[i]` lines (cut there)."""
    from transformers import GenerationConfig, StoppingCriteria, StoppingCriteriaList

    class StopAfterLines(_StopAfterLines, StoppingCriteria):
        pass

    vocab = int(model.get_output_embeddings().weight.shape[0])  # type: ignore[operator]
    newline = newline_token_mask(tokenizer, vocab)
    config = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                              eos_token_id=eos_id, pad_token_id=pad_id)
    order = sorted(range(len(prompts)), key=lambda i: (-len(prompts[i]), i))
    out = [""] * len(prompts)
    batches = [order[b:b + batch_size] for b in range(0, len(order), batch_size)]
    with torch.inference_mode():
        for batch in progress(batches, desc=desc, unit="batch"):
            ids, mask = left_padded([prompts[i] for i in batch], pad_id)
            width = ids.shape[1]
            stop = StoppingCriteriaList([StopAfterLines(newline, [lines[i] for i in batch], width)])
            gen = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device),  # type: ignore[operator]
                                 generation_config=config, stopping_criteria=stop)
            for r, i in enumerate(batch):
                new = gen[r, width:].tolist()
                if eos_id in new:
                    new = new[:new.index(eos_id)]
                out[i] = lines_of(completion_text(tokenizer, prompts[i], new), lines[i])
    return out


@dataclass(frozen=True)
class InfillSettings:
    window: int
    batch_size: int
    eos_id: int
    pad_id: int
    device: torch.device
    sentinels: tuple[int, int, int] | None  # None: the model has none (left to right only)
    resamples: int
    max_new_tokens: int  # per line of the true middle, capped at half the window


def run_kind(model: torch.nn.Module, tokenizer: Any, texts: list[str], paths: list[str], kind: str, n: int,
             seed: list[int], s: InfillSettings, split: str = "val", timings: dict[str, float] | None = None,
             write: bool = True) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Metrics and per-span rows for `n` spans of `kind` in one split's documents; `timings` gets the
    seconds spent scoring and writing. Without `write`, the spans are scored only (no exact match or
    edit similarity: generating is most of the cost)."""
    def ids(text: str) -> list[int]:
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])

    clock = time.perf_counter()
    spans = sample_spans(texts, n, seed, kind)
    enc = [(ids(p), ids(m), ids(x)) for p, m, x in (sp.pieces(texts[sp.doc]) for sp in spans)]
    # A middle is scored whole in half the window at most (the other half holds its prefix and suffix);
    # a longer one is left out. Writing it may stop sooner (max_new_tokens per line): a miss, not a skip.
    keep = [i for i, (_, m, _) in enumerate(enc) if 0 < len(m) <= s.window // 2]
    spans, enc = [spans[i] for i in keep], [enc[i] for i in keep]
    score_prompts = [build_prompt(p, m, x, window=s.window, room=len(m), eos_id=s.eos_id,
                                  sentinels=s.sentinels) for p, m, x in enc]
    middles = [q.middle for q in score_prompts]
    kw: dict[str, Any] = dict(batch_size=s.batch_size, pad_id=s.pad_id, device=s.device)
    nll_l2r = score_continuations(model, [q.l2r for q in score_prompts], middles, desc=f"infill {kind} l2r",
                                  **kw)
    nll_fim = (score_continuations(model, [q.fim or [] for q in score_prompts], middles,
                                   desc=f"infill {kind} fim", **kw) if s.sentinels else None)
    scored = time.perf_counter()
    written = write_spans(model, tokenizer, enc, [sp.lines for sp in spans], kind, s) if write else None
    if timings is not None:
        timings.update(score=scored - clock, write=time.perf_counter() - scored)
    rows = []
    for i, sp in enumerate(spans):
        middle = sp.pieces(texts[sp.doc])[1]
        got = None if written is None else written[i]
        rows.append({"split": split, "kind": kind, "path": paths[sp.doc], "line": sp.line, "lines": sp.lines,
                     "target": middle, "completion": got,
                     "exact_match": None if got is None else exact_match(got, middle),
                     "edit_similarity": None if got is None else edit_similarity(got, middle),
                     "bytes": len(middle.encode("utf-8")), "bits_l2r": float(nll_l2r[i] / LN2),
                     "bits_fim": None if nll_fim is None else float(nll_fim[i] / LN2)})
    return summarize(rows, [sp.doc for sp in spans], len(texts), s.resamples, seed,
                     "fim" if s.sentinels else "l2r", written=write), rows


def write_spans(model: torch.nn.Module, tokenizer: Any, enc: list[tuple[list[int], list[int], list[int]]],
                lines: list[int], kind: str, s: InfillSettings) -> list[str]:
    """The greedy middle of each encoded (prefix, middle, suffix), from the FIM prompt (left to right
    from the prefix without sentinels)."""
    gen_room = min(s.window // 2, s.max_new_tokens * KINDS[kind][1])
    prompts = [build_prompt(p, m, x, window=s.window, room=gen_room, eos_id=s.eos_id, sentinels=s.sentinels)
               for p, m, x in enc]
    return write_middles(model, tokenizer, [q.fim or q.l2r for q in prompts], lines, max_new_tokens=gen_room,
                         batch_size=s.batch_size, eos_id=s.eos_id, pad_id=s.pad_id, device=s.device,
                         desc=f"infill {kind} write")


def summarize(rows: list[dict[str, Any]], docs: list[int], n_docs: int, resamples: int, seed: list[int],
              mode: str, written: bool = True) -> dict[str, Any]:
    """The kind's metrics from its rows, each with a `_ci` over documents (shared resamples); exact
    match and edit similarity only when the middles were `written`."""
    def per_doc(values: list[float]) -> np.ndarray:
        return np.bincount(docs, weights=values, minlength=n_docs)[used]

    used = np.unique(docs) if docs else np.zeros(0, dtype=np.int64)
    counts = resample_counts(len(used), resamples, [*seed, 3])
    ones = per_doc([1.0] * len(rows))
    nbytes = per_doc([r["bytes"] for r in rows])
    numbers: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    if written:
        numbers["exact_match"] = (per_doc([float(r["exact_match"]) for r in rows]), ones)
        numbers["edit_similarity"] = (per_doc([r["edit_similarity"] for r in rows]), ones)
    numbers["middle_bpb_l2r"] = (per_doc([r["bits_l2r"] for r in rows]), nbytes)
    if mode == "fim":
        numbers["middle_bpb_fim"] = (per_doc([r["bits_fim"] for r in rows]), nbytes)
        numbers["suffix_gain_bpb"] = (per_doc([r["bits_l2r"] - r["bits_fim"] for r in rows]), nbytes)
    out: dict[str, Any] = {"samples": len(rows), "documents": len(used), "mode": mode}
    for key, (numer, denom) in numbers.items():
        ci = ratio_interval(numer, denom, counts) if len(rows) else None
        out[key] = float(numer.sum() / denom.sum()) if len(rows) and denom.sum() > 0 else None
        out[f"{key}_ci"] = [ci[0], ci[1]] if ci else None
    return out
