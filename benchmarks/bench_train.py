"""Train-stage throughput against a plain torch loop, with and without torch.compile, and MFU.

The stage (codex_ml.training.stage.run_training: Trainer, per-step dvclive logging, the same windows)
and a plain loop (forward, backward, clip, the same optimizer, cosine schedule: nothing else) train
the same model on the same batches with the same threads, alternating, in this one process. Printed:
tokens/s of each, the ratios to the plain eager loop (the goal for the compiled stage is >= 1.10),
and model FLOP utilisation (codex_ml/training/mfu.py): on a CPU against this machine's fp32 matmul
peak, measured here; on a GPU against the datasheet peak of the table in mfu.py at the run's precision
(bf16 for a bf16 run, TF32 for float32), or --peak-tflops for a GPU not in it.

    python benchmarks/bench_train.py                    # qwen3-mini, 16 x 128, Muon, eager + compiled
    python benchmarks/bench_train.py --no-compile --steps 5
    # the train=gpu profile's target (>= 40% MFU for llama-small on one H200):
    python benchmarks/bench_train.py --device cuda --dtype bfloat16 --model llama-small \
        --batch-size 64 --seq-len 1024
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import statistics
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Any

import kernels_first  # noqa: F401  (before torch: the CPU kernels, --kernels)
import numpy as np
import torch
from transformers import TrainerCallback, get_cosine_with_min_lr_schedule_with_warmup

from codex_ml.handoffs import TokenMeta
from codex_ml.models import Vocab, build_model, count_parameters
from codex_ml.params import parse_params
from codex_ml.shards import SplitIndex, write_token_split
from codex_ml.training.inputs import load_token_data
from codex_ml.training.mfu import flops_per_token, resolve_peak
from codex_ml.training.optim import plain_optimizer
from codex_ml.training.stage import TrainPaths, configure_torch, run_training
from codex_ml.training.trainer import fused_adamw, use_bf16
from codex_ml.training.windows import TrainWindows

VOCAB = Vocab(size=4096, pad_id=0, bos_id=1, eos_id=2)  # the default tokenizer's size (hf-bpe 4,096)


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
    TokenMeta(**meta).save(tokens)
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
        sync()
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


def sync() -> None:
    """Wait for the GPU: CUDA runs asynchronously, and a clock read without this times the launches."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def plain_tokens_per_s(root: Path, raw: dict[str, Any], warmup: int, steps: int, compile: bool) -> float:
    """The reference: the loop a person would write by hand around the same model and windows (on the
    GPU when there is one, as the stage; bf16 autocast when the stage would use it)."""
    p = parse_params(raw)
    t = p.train
    configure_torch(t.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = build_model(p.model, VOCAB, t.seq_len, t.seed).to(device)
    model.train()
    forward = torch.compile(model) if compile else model
    opt = plain_optimizer(model, t.optimizer, lr=t.lr, muon_lr=t.muon_lr, weight_decay=t.weight_decay,
                          betas=(t.beta1, t.beta2), fused=fused_adamw())  # the stage's optimizer and groups
    sched = get_cosine_with_min_lr_schedule_with_warmup(opt, t.warmup_steps, t.max_steps,
                                                         min_lr_rate=t.min_lr_ratio)
    tokens = load_token_data(root / "data/tokens").train
    per_step = t.batch_size * t.grad_accum
    windows = TrainWindows(tokens, t.seq_len, t.max_steps * per_step, per_step, t.seed)
    bf16 = use_bf16(t)
    t0 = 0.0
    for step in range(warmup + steps):
        if step == warmup:
            sync()
            t0 = time.perf_counter()
        for micro in range(t.grad_accum):
            first = (step * t.grad_accum + micro) * t.batch_size
            x = torch.stack([windows[i]["input_ids"] for i in range(first, first + t.batch_size)]).to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                loss = forward(input_ids=x, labels=x).loss / t.grad_accum
            loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
    sync()
    return steps * per_step * t.seq_len / (time.perf_counter() - t0)


def matmul_peak_flops(n: int = 2048, seconds: float = 3.0) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    count, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        torch.mm(a, b)
        count += 1
    return 2 * n**3 * count / (time.perf_counter() - t0)


def known_peak(args: argparse.Namespace, bf16: bool) -> tuple[float, str] | None:
    """(peak FLOP/s, what it is) as the train stage resolves it (mfu.resolve_peak: --peak-tflops, or on
    CUDA the table's dense peak at the run's precision; a GPU not in the table stops here); None on a
    CPU without --peak-tflops: its peak is measured."""
    if not args.peak_tflops and not torch.cuda.is_available():
        return None
    peak, about = resolve_peak(args.peak_tflops, bf16)
    if peak is None:
        raise SystemExit(f"bench_train: {about} (here: --peak-tflops)")
    return peak, f"--peak-tflops {args.peak_tflops:g}" if args.peak_tflops else about


def release_memory() -> None:
    """Between runs on a GPU: the last run's model, optimizer and compiled graphs are garbage now."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="qwen3-mini")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--optimizer", default="muon", choices=["muon", "adamw"])
    ap.add_argument("--steps", type=int, default=8, help="timed steps per measurement")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first (compilation happens here)")
    ap.add_argument("--repeats", type=int, default=2, help="alternating measurements of each; median")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                    help="where to train (auto: the GPU when torch sees one, as the stage does)")
    ap.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16"],
                    help="train.dtype (auto: bf16 on a GPU that has it, fp32 on CPU)")
    ap.add_argument("--kernels", default="avx2", choices=["avx2", "native"],
                    help="train.kernels: CPU kernels capped at AVX2 (the stage's default) or the CPU's own")
    ap.add_argument("--peak-tflops", type=float, default=0.0,
                    help="the device's dense peak for MFU (default: the table on GPUs, measured on CPUs)")
    args = ap.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("bench_train: --device cuda, but torch sees no CUDA device")
    if args.device == "cpu" and torch.cuda.is_available():
        # The stage trains wherever torch sees a GPU; hiding it must happen before torch looks.
        raise SystemExit("bench_train: --device cpu on a machine with a GPU: run it with "
                         "CUDA_VISIBLE_DEVICES= (empty)")

    total = args.warmup + args.steps
    raw = {"model": {"name": args.model},
           # final_seq_len 0: both loops train on --seq-len windows throughout (the stage's weight
           # average stays on: it is part of what the stage costs)
           "train": {"optimizer": args.optimizer, "batch_size": args.batch_size, "seq_len": args.seq_len,
                     "final_seq_len": 0, "max_steps": total,
                     "warmup_steps": 1, "eval_every": total, "checkpoint_every": total,
                     "eval_batches": 1, "threads": args.threads, "dtype": args.dtype,
                     "kernels": args.kernels}}
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
    params = parse_params(raw)
    bf16 = use_bf16(params.train)
    configure_torch(args.threads)  # as the runs do: on CUDA it allows TF32, which sets a float32 run's peak
    known = known_peak(args, bf16)
    cpu_peaks = [] if known else [matmul_peak_flops()]  # before and after: on a shared machine the best
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.chdir(root)  # dvclive looks for a DVC repository from the working directory
        write_tokens(root, 2_000_000)
        for _ in range(args.repeats):
            for name, measure in variants.items():
                results[name].append(measure(root))
                release_memory()
    peak, about = known or (max(*cpu_peaks, matmul_peak_flops()), "fp32 matmul peak (measured)")
    cuda = torch.cuda.is_available()
    model = build_model(params.model, VOCAB, args.seq_len, 0)
    fpt = flops_per_token(model, args.seq_len)

    base = statistics.median(results["plain loop, eager"])
    where = torch.cuda.get_device_name() if cuda else f"{torch.get_num_threads()} threads"
    print(f"{args.model} ({count_parameters(model) / 1e6:.2f}M parameters), batch {args.batch_size} x "
          f"{args.seq_len}, {'bf16' if bf16 else 'fp32'}, {where}, {args.steps} timed steps after "
          f"{args.warmup}, median of {args.repeats}")
    print(f"peak: {about}, {peak / 1e9:,.0f} GFLOP/s; model: {fpt / 1e6:.1f} MFLOP/token")
    print(f"{'':24} {'tokens/s':>10} {'vs plain eager':>15} {'MFU':>7}")
    for name, values in results.items():
        tps = statistics.median(values)
        print(f"{name:24} {tps:10.0f} {tps / base:14.3f}x {tps * fpt / peak:7.1%}")


if __name__ == "__main__":
    main()
