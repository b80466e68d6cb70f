"""prepare on the default corpus (the stdlib), as MB/s and as a ratio against a plain read-and-hash of
the same files, with and without redaction, measured in this one command (the machines are noisy:
compare ratios, not seconds); and, with --held-out-only, what the held-out hygiene costs.

    .venv/bin/python benchmarks/bench_prepare.py --save                   # both; writes benchmarks/results/
    .venv/bin/python benchmarks/bench_prepare.py --markdown               # the redaction table
    .venv/bin/python benchmarks/bench_prepare.py --held-out-only --runs 5 --save
    .venv/bin/python benchmarks/bench_prepare.py --held-out-only --markdown

Held-out hygiene: prepare + tokenize with benchmark decontamination and near-duplicate clusters kept in
one split (the default) against both without them (`data.decontaminate: []`,
`data.held_out.near_dup_threshold: null`), interleaved, `--runs` of each; wall time and CPU time (the
steadier of the two on a shared machine), best to best and mean to mean, as tokenize's own run-to-run
spread is about as large as the difference.
"""

from __future__ import annotations

import argparse
import hashlib
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from codex_ml.data.sources import open_source
from codex_ml.data.stage import prepare
from codex_ml.params import DataParams, HeldOutParams, TokenizerParams
from codex_ml.runtime import log
from codex_ml.tokenization.stage import tokenize

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tables  # benchmarks/tables.py, beside this file

T = TypeVar("T")


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


def held_out_cost(runs: int, load: tables.Load) -> dict[str, dict[str, list[float]]]:
    """prepare + tokenize with and without decontamination and the cluster rule, interleaved: wall
    time and CPU time of each run."""
    log.setLevel("WARNING")
    plain = DataParams(decontaminate=[], held_out=HeldOutParams(near_dup_threshold=None))
    times: dict[str, dict[str, list[float]]] = {"without": {"wall": [], "cpu": []},
                                                 "with": {"wall": [], "cpu": []}}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(runs):
            for name, params in (("without", plain), ("with", DataParams())):
                load.sample()
                t, c = time.perf_counter(), cpu_seconds()
                prepare_and_tokenize(params, Path(tmp) / name)
                times[name]["wall"].append(time.perf_counter() - t)
                times[name]["cpu"].append(cpu_seconds() - c)
    load.sample()
    return times


def held_out_markdown(result: dict[str, Any]) -> str:
    t = {r["name"]: r for r in result["rows"]}

    def mean(xs: list[float]) -> float:
        return sum(xs) / len(xs)

    cells = [[f"{kind} time", f"{min(t['without'][kind]):.2f} s", f"{min(t['with'][kind]):.2f} s",
              f"{min(t['with'][kind]) / min(t['without'][kind]):.2f}x",
              f"{mean(t['with'][kind]) / mean(t['without'][kind]):.2f}x"] for kind in ("wall", "cpu")]
    return (tables.table(["prepare + tokenize", "without (best)", "with, the default (best)", "best to best",
                          "mean to mean"], cells)
            + f"\n\n{result['settings']['runs']} interleaved runs of each on the stdlib. "
            + tables.measured_on(result))


def redaction(load: tables.Load) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    params = DataParams()
    load.sample()
    with tempfile.TemporaryDirectory() as tmp:
        base_s, nbytes = best_of(3, read_and_hash, params)
        stage_s, metrics = best_of(3, prepare, params, Path(tmp) / "out", Path(tmp) / "m.json")
        plain_s, _ = best_of(3, prepare, DataParams(redact_secrets=False), Path(tmp) / "o2",
                             Path(tmp) / "m2.json")
    load.sample()
    rows = [{"name": "read and hash every file", "seconds": base_s},
            {"name": "prepare without redaction (`data.redact_secrets: false`)", "seconds": plain_s},
            {"name": "prepare with redaction (the default)", "seconds": stage_s}]
    return rows, {"bytes": nbytes, "documents": sum(metrics["documents"].values()),
                  "files": metrics["files_seen"]}


def markdown(result: dict[str, Any]) -> str:
    s, rows = result["settings"], result["rows"]
    mb, base = s["bytes"] / 1e6, rows[0]["seconds"]
    cells = [[r["name"], f"{r['seconds']:.2f}", f"{mb / r['seconds']:.1f}", f"{r['seconds'] / base:.1f}x"]
             for r in rows]
    return (tables.table(["", "seconds", "MB/s", "x read and hash"], cells)
            + f"\n\nRedaction: {rows[2]['seconds'] / rows[1]['seconds']:.2f}x prepare's time without it. "
            f"The stdlib: {s['files']:,} files, {mb:.1f} MB read, {s['documents']:,} documents kept; best of "
            "3 runs of each. " + tables.measured_on(result))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--held-out-only", action="store_true", help="the held-out hygiene's cost alone")
    parser.add_argument("--runs", type=int, default=3, help="interleaved runs of each (held-out cost)")
    tables.arguments(parser)
    args = parser.parse_args()
    if args.markdown:
        if args.held_out_only:
            tables.print_saved("bench_prepare_held_out", held_out_markdown)
        else:
            tables.print_saved("bench_prepare", markdown)
        raise SystemExit(0)
    if not args.held_out_only:
        load = tables.Load()
        rows, settings = redaction(load)
        tables.publish("bench_prepare", args, tables.result(rows, load, **settings), markdown)
    load = tables.Load()
    times = held_out_cost(args.runs, load)
    rows = [{"name": name, **t} for name, t in times.items()]
    result = tables.result(rows, load, runs=args.runs)
    tables.publish("bench_prepare_held_out", args, result, held_out_markdown)
