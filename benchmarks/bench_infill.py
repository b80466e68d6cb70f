"""The infilling evaluation's cost against the eval stage's own work on one split, in this one process:
the stage's scoring (sliding windows over every document) and line completion at the default
settings, then infilling's line and block spans (scoring the middle with and without the suffix, and
writing it), alternating, best of --repeats. Printed: seconds of each, and infilling's share of the
stage's work (the budget is ~20%).

    dvc repro train                                   # models/model, data/tokens, data/prepared
    python benchmarks/bench_infill.py                 # val, 200 line spans, 100 block spans
    python benchmarks/bench_infill.py --line 100 --block 50 --humaneval
    python benchmarks/bench_infill.py --model models/checkpoints/checkpoint-400  # a kept checkpoint
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from codex_ml.eval.completion import complete_lines, sample_lines
from codex_ml.eval.infill import InfillSettings, run_kind
from codex_ml.eval.inputs import load_prepared, load_token_split
from codex_ml.eval.model import context_window, load_model, load_tokenizer, special_ids
from codex_ml.eval.score import score_documents
from codex_ml.fim.sentinels import require_sentinels


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=Path("models/model"))
    ap.add_argument("--tokenizer", type=Path, default=Path("models/tokenizer"),
                    help="where the tokenizer is when the model folder has none (a checkpoint)")
    ap.add_argument("--tokens", type=Path, default=Path("data/tokens"))
    ap.add_argument("--prepared", type=Path, default=Path("data/prepared"))
    ap.add_argument("--split", default="val")
    ap.add_argument("--completion", type=int, default=200, help="line completion samples (eval's default)")
    ap.add_argument("--line", type=int, default=200)
    ap.add_argument("--block", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--humaneval", action="store_true", help="also time HumanEval single-line infilling once")
    args = ap.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    model = load_model(args.model, device)
    tokenizer = load_tokenizer(args.model, args.tokenizer)
    eos, pad = special_ids(tokenizer, model)
    window = context_window(model)
    sentinels = require_sentinels(tokenizer, str(args.model), "train it with the FIM sentinels").ids()
    docs = load_token_split(args.tokens, args.split)
    records = load_prepared(args.prepared, args.split)
    texts, paths = [r["text"] for r in records], [r["path"] for r in records]
    settings = InfillSettings(window=window, batch_size=args.batch_size, eos_id=eos, pad_id=pad,
                              device=device, sentinels=sentinels, resamples=1000,
                              max_new_tokens=min(64, window // 2))

    def stage() -> None:
        score_documents(model, [d.ids for d in docs], window=window, stride=window // 2,
                        batch_size=args.batch_size, eos_id=eos, pad_id=pad, device=device)
        complete_lines(model, tokenizer, texts, sample_lines(texts, args.completion, [1337, 1]),
                       window=window, max_new_tokens=min(64, window // 2), batch_size=args.batch_size,
                       eos_id=eos, pad_id=pad, device=device)

    results: dict[str, dict] = {}
    phases: dict[str, dict[str, float]] = {"line": {}, "block": {}}

    def infill(kind: str, n: int) -> None:
        results[kind] = run_kind(model, tokenizer, texts, paths, kind, n, [1337, 2], settings, args.split,
                                 timings=phases[kind])[0]

    jobs = {"stage": stage, "line": lambda: infill("line", args.line),
            "block": lambda: infill("block", args.block)}
    best = {k: float("inf") for k in jobs}
    for _ in range(args.repeats):
        for name, job in jobs.items():
            t = time.perf_counter()
            job()
            best[name] = min(best[name], time.perf_counter() - t)
    print(f"{args.split}: {len(docs)} documents, window {window}, {torch.get_num_threads()} threads, best of "
          f"{args.repeats}")
    print(f"eval stage's work (scoring + {args.completion} line completions): {best['stage']:.1f} s")
    for kind, n in (("line", args.line), ("block", args.block)):
        m = results[kind]
        print(f"infill {kind}: {n} spans asked, {m['samples']} scored: {best[kind]:.1f} s "
              f"({best[kind] / best['stage']:.1%} of the stage's work: scoring "
              f"{phases[kind]['score']:.1f} s, writing {phases[kind]['write']:.1f} s); "
              f"exact match {m['exact_match']:.3f}, "
              f"edit similarity {m['edit_similarity']:.3f}, middle bpb with suffix {m['middle_bpb_fim']:.3f} "
              f"{m['middle_bpb_fim_ci']}, without {m['middle_bpb_l2r']:.3f} {m['middle_bpb_l2r_ci']}, gain "
              f"{m['suffix_gain_bpb']:.3f} {m['suffix_gain_bpb_ci']}")
    total = best["line"] + best["block"]
    print(f"infill line + block: {total:.1f} s = {total / best['stage']:.1%} of the eval stage's work")
    if args.humaneval:
        from codex_ml.eval.humaneval_infill import run_humaneval_infill

        t = time.perf_counter()
        m, _ = run_humaneval_infill(model, tokenizer, sentinels=sentinels, window=window,
                                    batch_size=args.batch_size, eos_id=eos, pad_id=pad, device=device,
                                    resamples=1000, seed=1337)
        print(f"humaneval single-line infilling: {m['tasks']} tasks in {time.perf_counter() - t:.0f} s, "
              f"pass@1 {m['pass@1']:.4f} {m['pass@1_ci']}, exact match {m['exact_match']:.3f}, "
              f"{m['outcomes']}")


if __name__ == "__main__":
    main()
