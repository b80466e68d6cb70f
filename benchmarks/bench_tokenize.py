"""tokenize on the default corpus (the stdlib), for both backends at the default vocabulary:

- the stage's encoding of the train split (read + encode + pack + write its shards and index) as a ratio
  against the backend's own batch encode with all cores on the same text, returning ids and nothing
  else (goal: >= 0.95);
- the whole stage's time (read, train, save, encode every split, check, metrics).

Measured in this one command, best of 3, interleaved (the machines are noisy: compare ratios).

    .venv/bin/python benchmarks/bench_tokenize.py
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sentencepiece as spm
from tokenizers import Tokenizer

from codex_ml.data.stage import prepare
from codex_ml.params import DataParams, TokenizerParams
from codex_ml.runtime import log
from codex_ml.tokenization import configure_threads, load_tokenizer
from codex_ml.tokenization.pack import pack_split, read_documents
from codex_ml.tokenization.stage import tokenize


def backend_batch_encode(backend: str, folder: Path, threads: int) -> Callable[[list[str]], Any]:
    """The backend library's own batch encode of the saved model, with all cores."""
    if backend == "sentencepiece":
        sp = spm.SentencePieceProcessor(model_file=str(folder / "sentencepiece.model"))
        return lambda texts: sp.encode(texts, num_threads=threads)
    hf = Tokenizer.from_file(str(folder / "tokenizer.json"))
    return lambda texts: [e.ids for e in hf.encode_batch_fast(texts, add_special_tokens=False)]


def timed(fn: Callable[..., Any], *args: Any) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn(*args)
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    log.setLevel("WARNING")
    threads = configure_threads(0)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        prepare(DataParams(), tmp / "prepared", tmp / "prepare.json")
        docs = list(read_documents(tmp / "prepared", "train"))
        texts = [d.text for d in docs]
        mb = sum(d.bytes for d in docs) / 1e6
        print(f"corpus: stdlib train split, {len(docs)} documents, {mb:.1f} MB; {threads} threads")
        for backend in ("sentencepiece", "hf-bpe"):
            out = tmp / backend
            t = time.perf_counter()
            m = tokenize(TokenizerParams(backend=backend), tmp / "prepared", out / "tokenizer",
                         out / "tokens", out / "tokenize.json")
            stage_s = time.perf_counter() - t
            tok = load_tokenizer(out / "tokenizer")
            baseline = backend_batch_encode(backend, out / "tokenizer", threads)
            base_times, stage_times = [], []  # (wall, process CPU) seconds
            for _ in range(3):
                base_times.append(timed(baseline, texts))
                (out / "bench").mkdir(exist_ok=True)
                stage_times.append(timed(pack_split, tok, tmp / "prepared", "train", out / "bench", threads))
            base, enc = min(w for w, _ in base_times), min(w for w, _ in stage_times)
            base_cpu, enc_cpu = min(c for _, c in base_times), min(c for _, c in stage_times)
            print(f"{backend:13s} vocab {m['vocab_size']}: {m['bytes_per_token']['train']:.3f} bytes/token "
                  f"(train), val round trip {m['round_trip_exact']}, AutoTokenizer match "
                  f"{m['autotokenizer_match']}")
            print(f"  backend batch encode: {base:6.2f} s  {mb / base:5.2f} MB/s")
            print(f"  stage encode + pack : {enc:6.2f} s  {mb / enc:5.2f} MB/s  ratio {base / enc:.3f} "
                  f"of the backend's throughput (goal >= 0.95)")
            print(f"  CPU time            : backend {base_cpu:.2f} s, stage {enc_cpu:.2f} s, ratio "
                  f"{base_cpu / enc_cpu:.3f} (the work added; immune to other load on the machine)")
            print(f"  whole stage         : {stage_s:6.2f} s  (train, save, encode 3 splits, checks)")


if __name__ == "__main__":
    main()
