"""Near-duplicate removal on the default corpus (the stdlib as prepare keeps it): what it costs against
prepare's own per-document work, measured in this one command, and what it finds at three thresholds
(checked against the exact Jaccard similarity of the shingle sets).

    .venv/bin/python benchmarks/bench_near_dedup.py --save      # measure; writes benchmarks/results/
    .venv/bin/python benchmarks/bench_near_dedup.py --markdown  # the saved tables (docs/scaling.md)

The machines are noisy: compare the ratios, not the seconds.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import tracemalloc
import zlib
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from bench_prepare import best_of
from datasketch import MinHash
from datasketch.hashfunc import sha1_hash32

from codex_ml.data.near_dedup import SCHEME, NearDedupIndex, shingles, signature
from codex_ml.data.process import processed_in_order
from codex_ml.data.sources import open_source
from codex_ml.data.splits import split_of
from codex_ml.data.stage import Tally, kept_documents
from codex_ml.params import DataParams, HeldOutParams, NearDedupParams
from codex_ml.paths import SPLITS

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tables  # benchmarks/tables.py, beside this file

T = TypeVar("T")
THRESHOLDS = (0.7, 0.85, 0.9)


def collect(params: DataParams) -> dict[str, list[dict[str, Any]]]:
    """prepare's per-document work and decisions on one core, records by their path-hash split
    (nothing written)."""
    records: dict[str, list[dict[str, Any]]] = {s: [] for s in SPLITS}
    source = open_source(params)
    processed = processed_in_order(params, source.documents(), workers=1)
    for p in kept_documents(params, Tally(), processed, source):
        records[split_of(p.path, params.val_fraction, params.test_fraction)].append(p.record)
    return records


def signatures(docs: list[tuple[str, str]], params: NearDedupParams) -> list[np.ndarray]:
    return [signature(text, params) for _, text in docs]


def signatures_datasketch(docs: list[tuple[str, str]], params: NearDedupParams,
                          hashfunc: Any = zlib.crc32) -> list[np.ndarray]:
    """The same signatures from datasketch's MinHash.update_batch, with CRC-32 (the same values) or
    with its default hash function, SHA-1."""
    out = []
    for _, text in docs:
        m = MinHash(num_perm=params.num_perm, seed=params.seed, hashfunc=hashfunc, scheme=SCHEME)
        values = list(set(shingles(text, params.shingle_size)))
        if values:
            m.update_batch(values)
        out.append(m.hashvalues)
    return out


def index_all(docs: list[tuple[str, str]], sigs: list[np.ndarray], params: NearDedupParams) -> NearDedupIndex:
    index = NearDedupIndex(params)
    for (key, _), sig in zip(docs, sigs, strict=True):
        index.match(key, sig)
    return index


def import_seconds(module: str) -> float:
    """Wall time of a fresh interpreter importing `module`, less one importing nothing but numpy."""
    def once(code: str) -> float:
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        return time.perf_counter() - t
    with_it = min(once(f"import numpy, {module}") for _ in range(3))
    return with_it - min(once("import numpy") for _ in range(3))


def found_at(threshold: float, docs: list[tuple[str, str]], sigs: list[np.ndarray], params: DataParams
             ) -> dict[str, Any]:
    """The near-duplicates at `threshold`: how many, their bytes, how many cross the path-hash splits, the
    weakest pair by exact shingle Jaccard, and the index's memory per kept document."""
    nd = params.near_dedup.model_copy(update={"threshold": threshold})
    tracemalloc.start()
    index = NearDedupIndex(nd)
    pairs = [(key, text, kept) for (key, text), sig in zip(docs, sigs, strict=True)
             if (kept := index.match(key, sig)) is not None]
    memory = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    texts = dict(docs)

    def exact(a: str, b: str) -> float:
        sa, sb = set(shingles(a, nd.shingle_size)), set(shingles(b, nd.shingle_size))
        return len(sa & sb) / len(sa | sb)

    def split(path: str) -> str:
        return split_of(path, params.val_fraction, params.test_fraction)

    return {"threshold": threshold, "documents": len(pairs),
            "bytes": sum(len(text.encode("utf-8")) for _, text, _ in pairs),
            "across_splits": sum(split(key) != split(kept) for key, _, kept in pairs),
            "weakest_exact": min((exact(text, texts[kept]) for _, text, kept in pairs), default=None),
            "index_bytes_per_kept": memory / len(index)}


def measure() -> tuple[list[dict[str, Any]], dict[str, Any]]:
    params = DataParams()
    nd = params.near_dedup
    # prepare's own per-document work: without the held-out hygiene, which computes signatures too
    own = params.model_copy(update={"decontaminate": [], "held_out": HeldOutParams(near_dup_threshold=None)})
    prepare_s, result = best_of(3, collect, own)
    # Path order: the order prepare writes, and within a folder the order it walks.
    docs = sorted((r["path"], r["text"]) for split in SPLITS for r in result[split])
    nbytes = sum(len(text.encode("utf-8")) for _, text in docs)
    sig_s, sigs = best_of(3, signatures, docs, nd)
    lib_s, lib_sigs = best_of(3, signatures_datasketch, docs, nd)
    assert all(np.array_equal(a, b) for a, b in zip(sigs, lib_sigs, strict=True))
    sha1_s, _ = best_of(1, signatures_datasketch, docs, nd, sha1_hash32)
    index_s, _ = best_of(3, index_all, docs, sigs, nd)
    cost = {"documents": len(docs), "bytes": nbytes, "prepare_s": prepare_s, "signature_s": sig_s,
            "datasketch_s": lib_s, "datasketch_sha1_s": sha1_s, "index_s": index_s,
            "import_datasketch_s": import_seconds("datasketch"), "threshold": nd.threshold,
            "num_perm": nd.num_perm}
    return [found_at(t, docs, sigs, params) for t in THRESHOLDS], cost


def markdown(result: dict[str, Any]) -> str:
    c = result["settings"]
    mb = c["bytes"] / 1e6
    one_core = c["signature_s"] + c["index_s"] + c["import_datasketch_s"]
    cost = tables.table(["", "measured"], [
        ["`signature`, one core", f"{c['signature_s']:.2f} s, {mb / c['signature_s']:.1f} MB/s: "
         f"{c['signature_s'] / c['prepare_s']:.1f}x prepare's own per-document work (walk, filters, exact "
         f"dedup, redaction: {c['prepare_s']:.2f} s)"],
        ["the same values from datasketch's `MinHash.update_batch`",
         f"{c['datasketch_s'] / c['signature_s']:.2f}x that time"],
        ["datasketch with its default SHA-1 instead of CRC-32",
         f"{mb / c['datasketch_sha1_s']:.1f} MB/s, {c['datasketch_sha1_s'] / c['datasketch_s']:.1f}x "
         "datasketch's CRC-32 time"],
        ["`match` over all documents, one process",
         f"{c['index_s']:.2f} s, {c['index_s'] / c['documents'] * 1e6:.0f} µs a document"],
        ["`import datasketch`", f"{c['import_datasketch_s']:.2f} s per process"],
        ["prepare with near-dedup / without",
         f"{(c['prepare_s'] + c['signature_s'] + c['index_s']) / c['prepare_s']:.2f}x on one core: "
         f"+{one_core:.1f} s"],
    ])
    found = tables.table(["threshold", "near-duplicates", "bytes", "across splits", "weakest exact J",
                          "index memory a kept document"], [
        [f"{r['threshold']}", f"{r['documents']} ({r['documents'] / c['documents']:.1%})",
         f"{r['bytes'] / 1e3:,.0f} kB ({r['bytes'] / c['bytes']:.2%})", str(r["across_splits"]),
         "n/a" if r["weakest_exact"] is None else f"{r['weakest_exact']:.2f}",
         f"{r['index_bytes_per_kept'] / 1e3:.1f} kB"] for r in result["rows"]])
    return (cost + "\n\n" + found + "\n\n" + f"On the {c['documents']:,} documents ({mb:.1f} MB) prepare "
            f"keeps from the stdlib, {c['num_perm']} permutations; the default threshold is "
            f"{c['threshold']}. " + tables.measured_on(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    tables.arguments(parser)
    args = parser.parse_args()
    if args.markdown:
        tables.print_saved("bench_near_dedup", markdown)
        return
    load = tables.Load()
    load.sample()
    rows, cost = measure()
    load.sample()
    tables.publish("bench_near_dedup", args, tables.result(rows, load, **cost), markdown)


if __name__ == "__main__":
    main()
