"""FIM's cost where training windows are made, on the pipeline's own token files: the window as the
sampler reads it left to right, the same window through context-level and document-level FIM, and one train
step of the default model on those windows, alternating in this one process (best of --repeats).

It also transforms consecutive windows over the whole train split at context level and counts what
happened to each fragment (transformed, left as it was because a window edge split a character or it
was too short for the sentinels, padded), and checks on --check documents that their ids spell their
text back byte for byte (the premise of cutting packed ids at characters).

    dvc repro tokenize                 # data/tokens and models/tokenizer (with the FIM sentinels)
    python benchmarks/bench_fim.py     # 16 windows of 128 and of 512 tokens, rate 0.5, spm 0.5
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer

from codex_ml.fim.sentinels import require_sentinels
from codex_ml.fim.token_bytes import TokenBytes, check_round_trip
from codex_ml.fim.windows import MARGIN, FimConfig, FimWindows
from codex_ml.handoffs import TokenMeta
from codex_ml.models import Vocab, build_model
from codex_ml.params import ModelParams
from codex_ml.shards import open_stream, read_index


def fim(config: FimConfig, hf: Tokenizer, table: TokenBytes) -> FimWindows:
    return FimWindows(config, hf, table)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", type=Path, default=Path("data/tokens"))
    ap.add_argument("--tokenizer", type=Path, default=Path("models/tokenizer"))
    ap.add_argument("--rate", type=float, default=0.5)
    ap.add_argument("--spm-rate", type=float, default=0.5)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--check", type=int, default=300, help="documents checked to spell their text back")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    meta = TokenMeta.load(args.tokens)
    stream = open_stream(args.tokens, meta, "train")
    offsets = read_index(args.tokens / meta.split("train", args.tokens).index).offsets()
    hf = Tokenizer.from_file(str(args.tokenizer / "tokenizer.json"))
    sentinels = require_sentinels(hf, str(args.tokenizer), "rerun the tokenize stage (dvc repro tokenize)")
    table = TokenBytes(hf)
    t0 = time.perf_counter()
    docs = np.linspace(0, len(offsets) - 2, min(args.check, len(offsets) - 1)).astype(int)
    texts = [table.join(stream[int(offsets[d]):int(offsets[d + 1]) - 1].tolist()).decode() for d in docs]
    check_round_trip(hf, table, texts, str(args.tokenizer))
    print(f"round trip: {len(texts)} train documents ({sum(map(len, texts)):,} characters) spell their "
          f"text back byte for byte ({time.perf_counter() - t0:.1f} s)")
    config = FimConfig(rate=args.rate, spm_rate=args.spm_rate, seed=1337, level="context",
                       sentinels=sentinels.ids(), eos_id=meta.eos_id, pad_id=meta.pad_id)

    counter = fim(config, hf, table)
    t0 = time.perf_counter()
    for k, start in enumerate(range(0, len(stream) - 512, 512)):
        counter.context(stream[start:start + 512 + MARGIN], (k,), 512)
    c = counter.counts
    print(f"whole train split, context level, 512-token windows: {c.fragments:,} fragments, "
          f"{c.transformed:,} transformed ({c.spm:,} SPM), {c.split_character:,} left as they were (an "
          f"end split a character) ({time.perf_counter() - t0:.1f} s, {len(stream):,} tokens)")

    vocab = Vocab.from_meta(meta)
    rng = np.random.default_rng(0)
    for seq_len in (128, 512):
        model = build_model(ModelParams(), vocab, seq_len, seed=0)
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        times: dict[str, list[float]] = {"plain": [], "context": [], "document": [], "step": []}
        for r in range(args.repeats):
            starts = rng.integers(0, len(stream) - seq_len, size=args.batch_size)
            keys = [(r, i) for i in range(args.batch_size)]
            t = time.perf_counter()
            plain = [stream[s:s + seq_len].astype(np.int64) for s in starts]
            times["plain"].append(time.perf_counter() - t)
            f = fim(config, hf, table)
            t = time.perf_counter()
            made = [f.context(stream[s:s + seq_len + MARGIN], key, seq_len)
                    for s, key in zip(starts, keys, strict=True)]
            times["context"].append(time.perf_counter() - t)
            assert all(len(m[0]) == len(p) for m, p in zip(made, plain, strict=True))
            d = fim(FimConfig(**{**config.__dict__, "level": "document"}), hf, table)  # a cold cache
            t = time.perf_counter()
            for s in starts:
                d.document_window(stream, offsets, int(s), seq_len)
            times["document"].append(time.perf_counter() - t)
            x = torch.from_numpy(np.stack([m[0] for m in made]))
            y = torch.from_numpy(np.stack([m[1] for m in made]))
            t = time.perf_counter()
            model(input_ids=x, labels=y).loss.backward()
            opt.step()
            opt.zero_grad()
            times["step"].append(time.perf_counter() - t)
        best = {k: min(v) for k, v in times.items()}
        print(f"{args.batch_size} x {seq_len} tokens ({torch.get_num_threads()} threads), best of "
              f"{args.repeats}: plain read {best['plain'] * 1e3:.2f} ms, context FIM "
              f"{best['context'] * 1e3:.1f} ms, document FIM (cold) {best['document'] * 1e3:.1f} ms, "
              f"train step (qwen3-mini, AdamW) {best['step'] * 1e3:.0f} ms: context FIM is "
              f"{best['context'] / best['step']:.1%} of a step, document FIM "
              f"{best['document'] / best['step']:.1%}")


if __name__ == "__main__":
    main()
