"""Near-duplicate removal on the default corpus (the stdlib as prepare keeps it): what it costs against
prepare's own per-document work, measured in this one command, and what it finds.

    .venv/bin/python benchmarks/bench_near_dedup.py

The machines are noisy: compare the ratios, not the seconds. Budget: the default pipeline's
prepare + tokenize (~35 s) may grow by 10% at most, so near-dedup on the stdlib must stay under ~3.5 s
of wall time; the decision it informs is in docs/scaling.md ("Near-duplicate removal").
"""

from __future__ import annotations

import subprocess
import sys
import time
import tracemalloc
import zlib
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

T = TypeVar("T")
THRESHOLDS = (0.7, 0.85, 0.9)


def collect(params: DataParams) -> dict[str, list[dict[str, Any]]]:
    """prepare's per-document work and decisions on one core, records by their path-hash split
    (nothing written)."""
    records: dict[str, list[dict[str, Any]]] = {s: [] for s in SPLITS}
    processed = processed_in_order(params, open_source(params).documents(), workers=1)
    for p in kept_documents(params, Tally(), processed):
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


def main() -> None:
    params = DataParams()
    nd = params.near_dedup
    # prepare's own per-document work: without the held-out hygiene, which computes signatures too
    own = params.model_copy(update={"decontaminate": [], "held_out": HeldOutParams(near_dup_threshold=None)})
    prepare_s, result = best_of(3, collect, own)
    # Path order: the order prepare writes, and within a folder the order it walks.
    docs = sorted((r["path"], r["text"]) for split in SPLITS for r in result[split])
    mb = sum(len(text.encode("utf-8")) for _, text in docs) / 1e6
    sig_s, sigs = best_of(3, signatures, docs, nd)
    lib_s, lib_sigs = best_of(3, signatures_datasketch, docs, nd)
    assert all(np.array_equal(a, b) for a, b in zip(sigs, lib_sigs, strict=True))
    sha1_s, _ = best_of(1, signatures_datasketch, docs, nd, sha1_hash32)
    index_s, index = best_of(3, index_all, docs, sigs, nd)
    tracemalloc.start()
    index_all(docs, sigs, nd)
    index_bytes = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    import_s = import_seconds("datasketch")

    print(f"corpus: {len(docs)} documents kept by prepare, {mb:.1f} MB")
    print(f"prepare's per-document work (collect): {prepare_s:6.2f} s  {mb / prepare_s:6.1f} MB/s")
    print(f"signature (one core)                 : {sig_s:6.2f} s  {mb / sig_s:6.1f} MB/s  "
          f"({sig_s / prepare_s:.2f}x prepare's work)")
    print(f"  the same values from datasketch's MinHash.update_batch: {lib_s:.2f} s "
          f"({lib_s / sig_s:.2f}x the time); with its default SHA-1 instead of CRC-32: "
          f"{mb / sha1_s:.1f} MB/s ({sha1_s / lib_s:.1f}x datasketch's CRC-32 time)")
    print(f"index (match, one process)           : {index_s:6.2f} s  "
          f"{index_s / len(docs) * 1e6:6.0f} us/doc, {index_bytes / len(index):.0f} B/kept doc")
    print(f"import datasketch (once per process) : {import_s:6.2f} s")
    ratio = (prepare_s + sig_s + index_s) / prepare_s
    print(f"prepare with near-dedup / without    : {ratio:.2f}x on one core; "
          f"+{sig_s + index_s + import_s:.1f} s on one core, about +{sig_s / 2 + index_s + import_s:.1f} s "
          f"with signatures on 2 workers (budget: +3.5 s)")
    for threshold in THRESHOLDS:
        at = nd.model_copy(update={"threshold": threshold})
        found = index_all(docs, sigs, at).duplicates
        print(f"threshold {threshold}: {found} near-duplicates ({found / len(docs):.1%} of documents)")


if __name__ == "__main__":
    main()
