"""What pinning the CPU kernels at AVX2 (train.kernels: avx2, codex_ml/kernels.py) costs in tokens/s.

The kernels are chosen when torch loads, so each measurement is its own process: bench_train's
measurement of the train stage (run_training on the same windows, everything the stage does per
step) and of the plain loop, with `--kernels avx2` and `--kernels native`, alternating (native, avx2,
native, avx2, ...) so that a shared machine's load falls on both alike; the best of the rounds of
each, and their ratio. The load average before and after is printed beside them: on a busy machine
only the ratio means anything.

    python benchmarks/bench_kernels.py                       # qwen3-mini, 16 x 128, 2 threads, 5 rounds
    python benchmarks/bench_kernels.py --rounds 3 --model llama-mini --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from codex_ml.report.provenance import cpu_model

KERNELS = ("native", "avx2")


def child(args: argparse.Namespace) -> None:
    """One measurement, in this process, on the kernels `--kernels` pinned when bench_train loaded."""
    from bench_train import plain_tokens_per_s, stage_tokens_per_s

    from codex_ml.kernels import in_use

    raw = {"model": {"name": args.model},
           "train": {"batch_size": args.batch_size, "seq_len": args.seq_len, "final_seq_len": 0,
                     "max_steps": args.warmup + args.steps, "warmup_steps": 1, "threads": args.threads,
                     "eval_every": args.warmup + args.steps, "checkpoint_every": args.warmup + args.steps,
                     "eval_batches": 1, "kernels": args.kernels}}
    root = Path(args.work)
    os.chdir(root)  # dvclive looks for a DVC repository from the working directory
    out = {"stage": stage_tokens_per_s(root, raw, args.warmup, args.steps),
           "plain": plain_tokens_per_s(root, raw, args.warmup, args.steps, compile=False),
           "kernels": in_use()}
    print(json.dumps(out))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="qwen3-mini")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=10, help="timed steps per measurement")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=5, help="alternating measurements of each; best of")
    ap.add_argument("--kernels", choices=KERNELS, help=argparse.SUPPRESS)  # internal: one measurement
    ap.add_argument("--work", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.kernels:
        child(args)
        return
    from bench_train import write_tokens

    from codex_ml.kernels import PINNED

    # each child pins its own kernels: none of the settings from this process or the shell
    env = {k: v for k, v in os.environ.items() if k not in PINNED}
    results: dict[str, list[dict[str, Any]]] = {k: [] for k in KERNELS}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-kernels-") as tmp:
        write_tokens(Path(tmp), 2_000_000)
        common = ["--model", args.model, "--batch-size", str(args.batch_size), "--seq-len", str(args.seq_len),
                  "--threads", str(args.threads), "--steps", str(args.steps), "--warmup", str(args.warmup),
                  "--work", tmp]
        for _ in range(args.rounds):
            for kernels in KERNELS:
                proc = subprocess.run([sys.executable, __file__, *common, "--kernels", kernels],
                                      env=env, capture_output=True, text=True)
                if proc.returncode:
                    raise SystemExit(f"bench_kernels: --kernels {kernels} failed\n{proc.stderr[-4000:]}")
                results[kernels].append(json.loads(proc.stdout.strip().splitlines()[-1]))
    load_after = os.getloadavg()
    print(f"{args.model}, batch {args.batch_size} x {args.seq_len}, fp32, {args.threads} threads, "
          f"{args.steps} timed steps after {args.warmup}, best of {args.rounds} alternating rounds; "
          f"{cpu_model()}, {os.cpu_count()} CPUs; load average {load_before[0]:.1f} before, "
          f"{load_after[0]:.1f} after")
    for kernels in KERNELS:
        print(f"  {kernels}: {results[kernels][0]['kernels']}")
    print(f"{'':20} {'native':>10} {'avx2':>10} {'avx2/native':>12}")
    for part in ("stage", "plain"):
        best = {k: max(r[part] for r in results[k]) for k in KERNELS}
        print(f"{part + ' tokens/s':20} {best['native']:10,.0f} {best['avx2']:10,.0f} "
              f"{best['avx2'] / best['native']:11.3f}x")
    rounds = zip(results["native"], results["avx2"], strict=True)
    print("each round (stage tokens/s, native / avx2): "
          + ", ".join(f"{n['stage']:,.0f}/{a['stage']:,.0f}" for n, a in rounds))


if __name__ == "__main__":
    main()
