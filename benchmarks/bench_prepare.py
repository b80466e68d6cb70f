"""prepare on the default corpus (the stdlib), as MB/s and as a ratio against a plain read-and-hash of
the same files, measured in this one command (the machines are noisy: compare ratios, not seconds).

    .venv/bin/python benchmarks/bench_prepare.py                    # both measurements
    .venv/bin/python benchmarks/bench_prepare.py --held-out-only    # the held-out budget alone
    .venv/bin/python benchmarks/bench_prepare.py --held-out-only --runs 5

Redaction's budget: prepare with redaction at most 1.5x the time of prepare before the
detect-secrets rules. Before them (bd45ef0, eight hand-written regexes) this command measured 1.60 s
with redaction and 0.51 s without on the stdlib: a ratio of 3.14, printed below as the reference.

Held-out hygiene's budget: prepare + tokenize with benchmark decontamination and near-duplicate
clusters kept in one split (the default) at most 1.15x the time of both without them
(`data.decontaminate: []`, `data.held_out.near_dup_threshold: null`), interleaved, best of 3 (or
`--runs N`); the ratio of the means is printed too, as tokenize's own run-to-run spread is about as large
as the difference.
"""

from __future__ import annotations

import argparse
import hashlib
import resource
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from codex_ml.data.sources import open_source
from codex_ml.data.stage import prepare
from codex_ml.params import DataParams, HeldOutParams, TokenizerParams
from codex_ml.runtime import log
from codex_ml.tokenization.stage import tokenize

T = TypeVar("T")

# prepare with redaction / prepare without, measured by this command at bd45ef0 (before the rules).
REDACT_RATIO_BEFORE = 1.60 / 0.51


def read_and_hash(params: DataParams) -> int:
    """The floor: the same sorted walk, reading and hashing every file, nothing else."""
    total = 0
    for doc in open_source(params).documents():
        if doc.data is not None:
            hashlib.sha256(doc.data).digest()
            total += len(doc.data)
    return total


def best_of(n: int, fn: Callable[..., T], *args: object) -> tuple[float, T]:
    times: list[float] = []
    for _ in range(n):
        t = time.perf_counter()
        result = fn(*args)
        times.append(time.perf_counter() - t)
    return min(times), result


def prepare_and_tokenize(params: DataParams, out: Path) -> dict:
    metrics = prepare(params, out / "prepared", out / "prepare.json")
    tokenize(TokenizerParams(), out / "prepared", out / "tokenizer", out / "tokens", out / "tokenize.json",
             data=params)
    return metrics


def cpu_seconds() -> float:
    """CPU time of this process (every thread) and of its ended children (prepare's workers)."""
    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


def held_out_budget(runs: int = 3) -> None:
    """prepare + tokenize with and without decontamination and the cluster rule, interleaved: wall
    time (what the budget is about) and CPU time (steadier on a machine shared with other work)."""
    log.setLevel("WARNING")
    plain = DataParams(decontaminate=[], held_out=HeldOutParams(near_dup_threshold=None))
    wall: dict[str, list[float]] = {"without": [], "with": []}
    cpu: dict[str, list[float]] = {"without": [], "with": []}
    m: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(runs):
            for name, params in (("without", plain), ("with", DataParams())):
                t, c = time.perf_counter(), cpu_seconds()
                m = prepare_and_tokenize(params, Path(tmp) / name)
                wall[name].append(time.perf_counter() - t)
                cpu[name].append(cpu_seconds() - c)
    labels = {"without": "without decontamination and clusters", "with": "with them (the default)"}
    for name, label in labels.items():
        runs_text = (f"wall {', '.join(f'{t:.2f}' for t in wall[name])}; "
                     f"cpu {', '.join(f'{t:.2f}' for t in cpu[name])}")
        print(f"prepare+tokenize {label:37s}: wall {min(wall[name]):6.2f} s, cpu {min(cpu[name]):6.2f} s "
              f"(runs: {runs_text})")
    def mean(xs: list[float]) -> float:
        return sum(xs) / len(xs)

    print(f"held-out hygiene: wall {min(wall['with']) / min(wall['without']):.3f}x, cpu "
          f"{min(cpu['with']) / min(cpu['without']):.3f}x best to best; wall "
          f"{mean(wall['with']) / mean(wall['without']):.3f}x, cpu "
          f"{mean(cpu['with']) / mean(cpu['without']):.3f}x mean to mean (budget 1.15x); "
          f"decontaminated {m['decontaminated']}, "
          f"cross-split near-duplicates {m['cross_split_near_duplicates']}")


def main() -> None:
    params = DataParams()
    with tempfile.TemporaryDirectory() as tmp:
        base_s, nbytes = best_of(3, read_and_hash, params)
        stage_s, metrics = best_of(3, prepare, params, Path(tmp) / "out", Path(tmp) / "m.json")
        plain_s, _ = best_of(3, prepare, DataParams(redact_secrets=False), Path(tmp) / "o2",
                             Path(tmp) / "m2.json")
    mb = nbytes / 1e6
    print(f"corpus: {sum(metrics['documents'].values())} documents kept of {metrics['files_seen']} files, "
          f"{mb:.1f} MB read")
    print(f"read+hash baseline : {base_s:6.2f} s  {mb / base_s:7.1f} MB/s")
    print(f"prepare (redaction): {stage_s:6.2f} s  {mb / stage_s:7.1f} MB/s  "
          f"ratio {base_s / stage_s:.3f} of baseline throughput ({stage_s / base_s:.1f}x its time)")
    print(f"prepare (no redact): {plain_s:6.2f} s  {mb / plain_s:7.1f} MB/s  "
          f"ratio {base_s / plain_s:.3f} of baseline throughput")
    ratio = stage_s / plain_s
    print(f"redaction: prepare {ratio:.2f}x its no-redaction time (before the detect-secrets rules: "
          f"{REDACT_RATIO_BEFORE:.2f}x); time against before: {ratio / REDACT_RATIO_BEFORE:.2f}x "
          f"(budget 1.5x)")
    found = {k: v for k, v in metrics["redactions"].items() if v}
    print("findings per MB: " + ", ".join(f"{k} {v / mb:.2f}" for k, v in sorted(found.items())))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--held-out-only", action="store_true", help="the held-out budget alone")
    parser.add_argument("--runs", type=int, default=3, help="interleaved runs of each (held-out budget)")
    args = parser.parse_args()
    if not args.held_out_only:
        main()
    held_out_budget(args.runs)
