"""Train-stage throughput against a plain torch loop, with and without torch.compile, and MFU.

The stage (codex_ml.training.run.run_training: Trainer, per-step dvclive logging, the same windows)
and a plain loop (forward, backward, clip, the same optimizer, cosine schedule: nothing else) train
the same model on the same batches with the same threads, alternating, in this one process. Printed:
tokens/s of each, the ratios to the plain eager loop (the goal for the compiled stage is >= 1.10),
and model FLOP utilisation against this machine's fp32 matmul peak, measured here.

    python benchmarks/bench_train.py                    # llama-mini, batch 16 x 128, Muon, eager and compiled
    python benchmarks/bench_train.py --no-compile --steps 5
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import TrainerCallback, get_cosine_with_min_lr_schedule_with_warmup

from codex_ml.models import Vocab, build_model, count_parameters
from codex_ml.params import parse_params
from codex_ml.shards import SplitIndex, write_token_split
from codex_ml.training.data import TrainWindows, load_token_data
from codex_ml.training.optim import plain_optimizer
from codex_ml.training.run import TrainPaths, configure_torch, run_training

VOCAB = Vocab(size=8192, pad_id=0, bos_id=1, eos_id=2)


def write_tokens(root: Path, n_tokens: int) -> None:
    """Real code as token ids (stdlib bytes: which ids does not change the work) in the tokenize
    stage's format, and a tokenizer folder for the stage to copy into its model folder."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    stdlib = Path(sysconfig.get_paths()["stdlib"])
    data = b"".join(p.read_bytes() for p in sorted(stdlib.glob("*.py")))[:n_tokens]
    ids = np.frombuffer(data, dtype=np.uint8).astype(np.uint16) + 3
    tokens = root / "data/tokens"
    tokens.mkdir(parents=True)
    split = len(ids) * 9 // 10
    meta: dict[str, Any] = {"dtype": "uint16", "vocab_size": VOCAB.size, "backend": "bytes", "pad_id": 0,
                            "bos_id": 1, "eos_id": 2, "unk_id": 0, "splits": {}}
    for name, part in (("train", ids[:split]), ("val", ids[split:])):
        # one "document" per split: the benchmark samples windows, it never cuts documents
        index = SplitIndex(paths=[name], bytes=[len(part)], tokens=[len(part)])
        meta["splits"][name] = write_token_split(tokens, name, part, index)
    (tokens / "meta.json").write_text(json.dumps(meta))
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel()
    PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="</s>").save_pretrained(root / "models/tokenizer")


class StepClock(TrainerCallback):
    """Wall time from the end of step `start` to the end of step `stop` (everything the stage does
    per step, logging included; the compile/warm-up steps before `start` excluded)."""

    def __init__(self, start: int, stop: int):
        self.start, self.stop, self.seconds = start, stop, 0.0
        self._t0 = 0.0

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step == self.start:
            self._t0 = time.perf_counter()
        elif state.global_step == self.stop:
            self.seconds = time.perf_counter() - self._t0


def stage_tokens_per_s(root: Path, raw: dict[str, Any], warmup: int, steps: int) -> float:
    params = parse_params(raw)
    clock = StepClock(warmup, warmup + steps)
    shutil.rmtree(root / "out", ignore_errors=True)  # else it would resume the last run's checkpoint
    paths = TrainPaths(tokens=root / "data/tokens", tokenizer=root / "models/tokenizer",
                       model=root / "out/model", checkpoints=root / "out/checkpoints",
                       metrics=root / "out/metrics")
    run_training(params, paths, callbacks=(clock,))
    t = params.train
    return steps * t.batch_size * t.grad_accum * t.seq_len / clock.seconds


def plain_tokens_per_s(root: Path, raw: dict[str, Any], warmup: int, steps: int, compile: bool) -> float:
    """The reference: the loop a person would write by hand around the same model and windows."""
    p = parse_params(raw)
    t = p.train
    configure_torch(t.threads)
    model = build_model(p.model, VOCAB, t.seq_len, t.seed)
    model.train()
    forward = torch.compile(model) if compile else model
    opt = plain_optimizer(model, t.optimizer, lr=t.lr, muon_lr=t.muon_lr, weight_decay=t.weight_decay,
                          betas=(t.beta1, t.beta2))  # the stage's optimizer and weight-decay groups
    sched = get_cosine_with_min_lr_schedule_with_warmup(opt, t.warmup_steps, t.max_steps,
                                                         min_lr_rate=t.min_lr_ratio)
    tokens = load_token_data(root / "data/tokens").train
    per_step = t.batch_size * t.grad_accum
    windows = TrainWindows(tokens, t.seq_len, t.max_steps * per_step, per_step, t.seed)
    t0 = 0.0
    for step in range(warmup + steps):
        if step == warmup:
            t0 = time.perf_counter()
        for micro in range(t.grad_accum):
            first = (step * t.grad_accum + micro) * t.batch_size
            x = torch.stack([windows[i]["input_ids"] for i in range(first, first + t.batch_size)])
            loss = forward(input_ids=x, labels=x).loss / t.grad_accum
            loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
    return steps * per_step * t.seq_len / (time.perf_counter() - t0)


def matmul_peak_flops(n: int = 2048, seconds: float = 3.0) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    count, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        torch.mm(a, b)
        count += 1
    return 2 * n**3 * count / (time.perf_counter() - t0)


def flops_per_token(model: Any, seq_len: int) -> float:
    """6 N (forward + backward of every weight matmul; tied embeddings count once, as the lm_head
    matmul) + 12 L h T for attention scores and values (PaLM's accounting)."""
    c = model.config
    return 6 * count_parameters(model) + 12 * c.num_hidden_layers * c.hidden_size * seq_len


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="llama-mini")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--optimizer", default="muon", choices=["muon", "adamw"])
    ap.add_argument("--steps", type=int, default=8, help="timed steps per measurement")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first (compilation happens here)")
    ap.add_argument("--repeats", type=int, default=2, help="alternating measurements of each; median")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    ap.add_argument("--no-compile", action="store_true")
    args = ap.parse_args()

    total = args.warmup + args.steps
    raw = {"model": {"name": args.model},
           "train": {"optimizer": args.optimizer, "batch_size": args.batch_size, "seq_len": args.seq_len,
                     "max_steps": total,
                     "warmup_steps": 1, "eval_every": total, "checkpoint_every": total,
                     "eval_batches": 1, "threads": args.threads}}
    variants: dict[str, Any] = {
        "plain loop, eager": lambda r: plain_tokens_per_s(r, raw, args.warmup, args.steps, compile=False),
        "train stage, eager": lambda r: stage_tokens_per_s(r, raw, args.warmup, args.steps),
    }
    if not args.no_compile:
        compiled = {**raw, "train": {**raw["train"], "compile": True}}
        variants["plain loop, compiled"] = lambda r: plain_tokens_per_s(r, raw, args.warmup, args.steps,
                                                                        compile=True)
        variants["train stage, compiled"] = lambda r: stage_tokens_per_s(r, compiled, args.warmup, args.steps)

    results: dict[str, list[float]] = {name: [] for name in variants}
    peaks = [matmul_peak_flops()]  # before and after: on a shared machine the best is the peak
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.chdir(root)  # dvclive looks for a DVC repository from the working directory
        write_tokens(root, 2_000_000)
        for _ in range(args.repeats):
            for name, measure in variants.items():
                results[name].append(measure(root))
    peaks.append(matmul_peak_flops())
    peak = max(peaks)
    model = build_model(parse_params(raw).model, VOCAB, args.seq_len, 0)
    fpt = flops_per_token(model, args.seq_len)

    base = statistics.median(results["plain loop, eager"])
    print(f"{args.model} ({count_parameters(model) / 1e6:.2f}M parameters), batch {args.batch_size} x "
          f"{args.seq_len}, {torch.get_num_threads()} threads, {args.steps} timed steps after "
          f"{args.warmup}, median of {args.repeats}")
    print(f"fp32 matmul peak (measured): {peak / 1e9:.0f} GFLOP/s; model: {fpt / 1e6:.1f} MFLOP/token")
    print(f"{'':24} {'tokens/s':>10} {'vs plain eager':>15} {'MFU':>7}")
    for name, values in results.items():
        tps = statistics.median(values)
        print(f"{name:24} {tps:10.0f} {tps / base:14.3f}x {tps * fpt / peak:7.1%}")


if __name__ == "__main__":
    main()
