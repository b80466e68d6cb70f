"""The fused output-layer loss (codex_ml.models.head) against transformers' own, forward + backward.

Two copies of the same model, one with `fuse_loss` applied, run `model(input_ids, labels).loss.backward()`
on the same real-code batch, alternating, in this one process. Printed: milliseconds per step of each
(median), their ratio (transformers' time / fused time: > 1 means the fused loss is faster) and the
peak memory of each on CUDA. On CUDA `--bf16` runs both under bf16 autocast, as the train stage does.

    python benchmarks/bench_head.py                              # qwen3-mini (the default), 16 x 128, CPU
    python benchmarks/bench_head.py --device cuda --bf16 --model llama-small --batch-size 64 --seq-len 512
"""

from __future__ import annotations

import argparse
import statistics
import sysconfig
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from codex_ml.models import Vocab, build_model, count_parameters
from codex_ml.models.head import fuse_loss
from codex_ml.params import ModelParams


def real_batch(batch: int, seq_len: int, vocab: int) -> torch.Tensor:
    root = Path(sysconfig.get_paths()["stdlib"])
    data = b"".join(p.read_bytes() for p in sorted(root.glob("*.py")))
    ids = np.frombuffer(data[:batch * seq_len], dtype=np.uint8).astype(np.int64) + 3
    return torch.from_numpy(ids % vocab).view(batch, seq_len)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="qwen3-mini")
    ap.add_argument("--vocab", type=int, default=4096)  # the default tokenizer's
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast (as the stage on CUDA)")
    ap.add_argument("--steps", type=int, default=5, help="timed steps per measurement")
    ap.add_argument("--repeats", type=int, default=7, help="alternating measurements of each; median")
    args = ap.parse_args()

    device = torch.device(args.device)
    vocab = Vocab(size=args.vocab, pad_id=0, bos_id=1, eos_id=2)
    models = {name: build_model(ModelParams(name=args.model), vocab, args.seq_len, 0).to(device)
              for name in ("transformers", "fused")}
    assert fuse_loss(models["fused"]), "this model has no plain head to fuse"
    x = real_batch(args.batch_size, args.seq_len, args.vocab).to(device)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    def step(model: torch.nn.Module) -> Callable[[], None]:
        def run() -> None:
            model.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16):
                loss = model(input_ids=x, labels=x).loss
            loss.backward()
        return run

    times: dict[str, list[float]] = {name: [] for name in models}
    peak: dict[str, float] = {}
    for name, model in models.items():  # warm-up (allocator, kernels) and peak memory
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        for _ in range(2):
            step(model)()
        sync()
        if device.type == "cuda":
            peak[name] = torch.cuda.max_memory_allocated() / 2**20
    for _ in range(args.repeats):
        for name, model in models.items():
            run = step(model)
            sync()
            t0 = time.perf_counter()
            for _ in range(args.steps):
                run()
            sync()
            times[name].append((time.perf_counter() - t0) / args.steps)

    med = {name: statistics.median(v) for name, v in times.items()}
    tokens = args.batch_size * args.seq_len
    print(f"{args.model} ({count_parameters(models['fused']) / 1e6:.2f}M parameters), vocab {args.vocab}, "
          f"batch {args.batch_size} x {args.seq_len}, {device}{' bf16 autocast' if args.bf16 else ''}, "
          f"{torch.get_num_threads()} threads, median of {args.repeats} x {args.steps} steps")
    for name in models:
        mem = f", peak {peak[name]:,.0f} MiB" if name in peak else ""
        print(f"{name:13} {med[name] * 1000:8.2f} ms/step  {tokens / med[name]:12,.0f} tokens/s{mem}")
    print(f"ratio transformers/fused: {med['transformers'] / med['fused']:.3f}")


if __name__ == "__main__":
    main()
