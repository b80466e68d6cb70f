"""Eval throughput against a plain `torch.no_grad()` forward over the same windows.

The eval scorer (codex_ml.eval.score) plans sliding windows per document, builds padded batches, runs
the model, picks the scored positions' logits, and accumulates NLL and accuracy per document: the loop
of `score_documents`, piece by piece. The reference runs only `model(input_ids=...)` under
`torch.no_grad()` over the very same batches. Printed: tokens/s of both and their ratio (eval time /
forward time; the goal is <= 1.05).

    python benchmarks/bench_eval.py                      # llama-tiny shape, random weights
    python benchmarks/bench_eval.py --model models/model # a trained model folder

`--infill-share`: what the infilling evaluation adds to the eval stage, on one held-out split of the
pipeline's data with a trained model (the default eval params of params.yaml): the stage's own work on
the split without infilling (scoring every document, line completion and its bits per byte: the
stage's `evaluate_split`) against eval.infill's lines and blocks (`infill_split`), alternating, best of
--repeats. Printed: seconds of each and infilling's share of the stage's time (its budget is ~20%).

    dvc repro train
    python benchmarks/bench_eval.py --infill-share --model models/model --repeats 2
"""

from __future__ import annotations

import argparse
import sysconfig
import time
from pathlib import Path

import numpy as np
import torch

from codex_ml.eval.score import (
    DocScores,
    accepts_logits_to_keep,
    accumulate,
    make_batches,
    score_batch,
    sequences,
)
from codex_ml.eval.windows import plan


def documents(n_bytes: int) -> list[np.ndarray]:
    """Real code: stdlib modules as byte ids (token identity does not change the work), + EOS."""
    root = Path(sysconfig.get_paths()["stdlib"])
    docs, total = [], 0
    for p in sorted(root.glob("*.py")):
        data = p.read_bytes()[:20_000]
        docs.append(np.frombuffer(data, dtype=np.uint8).astype(np.int64))
        total += len(data)
        if total >= n_bytes:
            break
    return docs


def llama_tiny() -> torch.nn.Module:
    """The registry's default shape (h256, 4 layers, vocab 8192), random weights."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=8192, hidden_size=256, intermediate_size=704, num_hidden_layers=4,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=2048,
                         tie_word_embeddings=True)
    return LlamaForCausalLM(config).eval()


def infill_share(args: argparse.Namespace) -> None:
    """The eval stage's work on one split with and without infilling, alternating, best of repeats."""
    from codex_ml.eval.editor import infill_settings, infill_split
    from codex_ml.eval.model import load_model, load_tokenizer, special_ids
    from codex_ml.eval.stage import EvalInputs, evaluate_split, load_documents, resolve_window, split_seed
    from codex_ml.params import load_params

    params = load_params(args.params)
    ev = params.eval.replace(bootstrap=0)  # intervals are numpy work outside both timings' models
    device = torch.device("cpu")
    model = load_model(args.model, device)
    tokenizer = load_tokenizer(args.model, Path("models/tokenizer"))
    eos, pad = special_ids(tokenizer, model)
    window = resolve_window(model, ev, params.train.context)
    docs, texts = load_documents(EvalInputs(model_dir=args.model), args.split, tokenizer, eos)
    settings = infill_settings(window, tokenizer, ev, eos_id=eos, pad_id=pad, device=device)
    jobs = {
        "stage": lambda: evaluate_split(model, tokenizer, args.split, docs, texts, None, ev, window=window,
                                        stride=ev.stride_in(window), eos_id=eos, pad_id=pad, device=device),
        "infill": lambda: infill_split(model, tokenizer, args.split, texts, [d.path for d in docs], ev,
                                       settings, split_seed(ev.seed, args.split)),
    }
    best = dict.fromkeys(jobs, float("inf"))
    for _ in range(args.repeats):
        for name, job in jobs.items():
            t = time.perf_counter()
            job()
            best[name] = min(best[name], time.perf_counter() - t)
    i = ev.infill
    print(f"{args.split}: {len(docs)} documents, window {window}, {torch.get_num_threads()} threads, "
          f"best of {args.repeats}; sentinels: {'yes' if settings.sentinels else 'no'}")
    print(f"eval stage without infilling (scoring, {ev.completion_samples} line completions): "
          f"{best['stage']:.1f} s")
    print(f"infilling ({i.line} lines written, {i.block} blocks scored, {settings.window}-token windows): "
          f"{best['infill']:.1f} s")
    share = best["infill"] / (best["stage"] + best["infill"])
    print(f"infilling's share of the eval stage's time: {share:.1%} (it adds "
          f"{best['infill'] / best['stage']:.1%} to the stage without it)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--infill-share", action="store_true", help="infilling's share of the eval stage's time")
    ap.add_argument("--params", type=Path, default=Path("params.yaml"), help="--infill-share: eval params")
    ap.add_argument("--split", default="val", help="--infill-share: the held-out split")
    ap.add_argument("--model", type=Path, help="a model folder (default: llama-tiny shape, random weights)")
    ap.add_argument("--bytes", type=int, default=40_000, help="code to score (default 40000 bytes)")
    ap.add_argument("--window", type=int, default=256)
    ap.add_argument("--stride", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    if args.infill_share:
        if args.model is None:
            ap.error("--infill-share needs --model (a trained model folder)")
        infill_share(args)
        return

    if args.model:
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32).eval()
    else:
        model = llama_tiny()
    device = torch.device("cpu")
    eos = pad = 0
    docs = documents(args.bytes)
    seqs = sequences(docs, eos)
    windows = plan([len(d) for d in docs], args.window, args.stride)
    batches = list(make_batches(seqs, windows, args.batch_size, pad))
    fed = sum(int(b.input_ids.numel()) for b in batches)
    scored = sum(len(d) for d in docs)
    trim = accepts_logits_to_keep(model)
    scores = DocScores(np.zeros(len(docs)), np.zeros(len(docs), dtype=np.int64),
                       np.zeros(len(docs), dtype=np.int64))

    # Other work on a shared machine only ever adds time, so each piece's best of `repeats` runs is its
    # cost; plain and eval alternate batch by batch, so both see the same machine.
    t_plain = np.full((args.repeats, len(batches)), np.inf)
    t_eval = np.full((args.repeats, len(batches)), np.inf)
    t_plan = []
    with torch.inference_mode():
        model(input_ids=batches[0].input_ids, use_cache=False)  # warm-up: allocator, kernels
    for r in range(args.repeats):
        t0 = time.perf_counter()
        list(make_batches(seqs, plan([len(d) for d in docs], args.window, args.stride), args.batch_size, pad))
        t_plan.append(time.perf_counter() - t0)
        for i, b in enumerate(batches):
            t0 = time.perf_counter()
            with torch.no_grad():
                model(input_ids=b.input_ids, use_cache=False)
            t_plain[r, i] = time.perf_counter() - t0
            t0 = time.perf_counter()
            with torch.inference_mode():
                accumulate(scores, b, *score_batch(model, b, device, trim))
            t_eval[r, i] = time.perf_counter() - t0
    p = float(t_plain.min(axis=0).sum())
    o = float(t_eval.min(axis=0).sum()) + min(t_plan)
    print(f"windows: {len(windows)} in {len(batches)} batches; {fed} tokens fed, {scored} scored "
          f"(window {args.window}, stride {args.stride}, {torch.get_num_threads()} threads, "
          f"logits_to_keep: {trim})")
    print(f"plain no_grad forward: {p:.3f} s  ({fed / p:,.0f} fed tokens/s)")
    print(f"eval (plan + score + accumulate): {o:.3f} s  ({fed / o:,.0f} fed tokens/s, "
          f"{scored / o:,.0f} scored tokens/s)")
    print(f"ratio eval/forward: {o / p:.3f}")


if __name__ == "__main__":
    main()
