"""Eval throughput against a plain `torch.no_grad()` forward over the same windows.

The eval scorer (codex_ml.eval.score) plans sliding windows per document, builds padded batches, runs
the model, picks the scored positions' logits, and accumulates NLL and accuracy per document: the loop
of `score_documents`, piece by piece. The reference runs only `model(input_ids=...)` under
`torch.no_grad()` over the very same batches. Printed: tokens/s of both and their ratio (eval time /
forward time; the goal is <= 1.05).

    python benchmarks/bench_eval.py                      # llama-tiny shape, random weights
    python benchmarks/bench_eval.py --model models/model # a trained model folder
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, help="a model folder (default: llama-tiny shape, random weights)")
    ap.add_argument("--bytes", type=int, default=40_000, help="code to score (default 40000 bytes)")
    ap.add_argument("--window", type=int, default=256)
    ap.add_argument("--stride", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

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
