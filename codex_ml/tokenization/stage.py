"""The tokenize stage's work: train a tokenizer on the train split (or, with `model.pretrained`, take
the model's own: tokenization/pretrained.py), save it loadable by transformers, pack every split into
token files, check the result, write metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from codex_ml.io import atomic_dir, write_json
from codex_ml.params import TokenizerParams
from codex_ml.pretrained import BaseModel
from codex_ml.runtime import StageError, log
from codex_ml.tokenization import CodexTokenizer, PretrainedTokenizer, configure_threads, train_tokenizer
from codex_ml.tokenization.pack import (
    Document,
    PackedSplit,
    pack_split,
    read_prepared,
    read_tokens,
    token_dtype,
)
from codex_ml.tokenization.validate import autotokenizer_failures, load_autotokenizer, round_trip_failures

SPLITS = ("train", "val", "test")
META_FILE = "meta.json"


def tokenize(params: TokenizerParams, prepared_dir: Path, tokenizer_dir: Path, tokens_dir: Path,
             metrics_path: Path, base: BaseModel | None = None) -> dict[str, Any]:
    """Run the whole stage. Both output folders are built aside and swapped in only after every
    check passed; metrics are written last. With `base` (a resolved model.pretrained), its own
    tokenizer encodes and nothing is trained."""
    threads = configure_threads(params.workers)
    docs = {split: read_prepared(prepared_dir / f"{split}.jsonl") for split in SPLITS}
    if not docs["train"]:
        raise StageError(f"{prepared_dir / 'train.jsonl'}: no documents to train the tokenizer on")
    tok: CodexTokenizer
    if base is not None:
        tok = PretrainedTokenizer.from_base(base)
        log.info("tokenize: model.pretrained %s: encoding with its own tokenizer (%d tokens); nothing is "
                 "trained, so tokenizer.vocab_size and tokenizer.model_type are not used", base.name,
                 tok.vocab_size)
    else:
        tok = train_tokenizer([d.text for d in docs["train"]], params)
        log.info("tokenize: trained %s (%s) with %d tokens", tok.backend, params.model_type, tok.vocab_size)
        if tok.vocab_size < params.vocab_size:  # BPE ran out of pairs seen twice: a small corpus
            log.warning("tokenize: the corpus gave only %d of tokenizer.vocab_size=%d tokens; meta.json and "
                        "the model use %d", tok.vocab_size, params.vocab_size, tok.vocab_size)
    with atomic_dir(tokenizer_dir) as tok_tmp, atomic_dir(tokens_dir) as tokens_tmp:
        tok.save(tok_tmp)
        table = tok.byte_fallback_table()
        packed = {split: pack_split(tok, docs[split], tokens_tmp / f"{split}.bin", threads, table)
                  for split in SPLITS}
        meta = {"dtype": token_dtype(tok.vocab_size).name, "vocab_size": tok.vocab_size,
                "backend": tok.backend, "pad_id": tok.special_ids.pad, "bos_id": tok.special_ids.bos,
                "eos_id": tok.special_ids.eos, "unk_id": tok.special_ids.unk,
                "splits": {split: packed[split].meta() for split in SPLITS}}
        if isinstance(tok, PretrainedTokenizer):  # which tokenizer made these ids: train checks it
            meta["base_model"] = tok.base
        write_json(tokens_tmp / META_FILE, meta)
        checks = check_outputs(tok, tok_tmp, tokens_tmp, meta, docs["val"])
    metrics = metrics_of(tok, params, packed, meta, checks)
    write_json(metrics_path, metrics)
    return metrics


def check_outputs(tok: CodexTokenizer, tokenizer_dir: Path, tokens_dir: Path, meta: dict[str, Any],
                  val: list[Document]) -> dict[str, Any]:
    """Read the token files back as training will, check their layout against meta.json, and check
    on val that the stored ids decode to the documents and that AutoTokenizer gives the same ids."""
    for split, info in meta["splits"].items():
        tokens = read_tokens(tokens_dir / info["file"], meta["dtype"])
        offsets = np.asarray(info["doc_offsets"], dtype=np.int64)
        if len(tokens) != info["tokens"] or offsets[-1] != len(tokens):
            raise StageError(f"{split}.bin holds {len(tokens)} tokens, meta.json says {info['tokens']}")
        if info["documents"] and not np.all(tokens[offsets[1:] - 1] == meta["eos_id"]):
            raise StageError(f"{split}.bin: a document does not end with EOS (id {meta['eos_id']})")
        if len(tokens) and int(tokens.max()) >= meta["vocab_size"]:
            raise StageError(f"{split}.bin: token id {int(tokens.max())} >= vocab_size {meta['vocab_size']}")
    if not val:
        log.warning("tokenize: the val split is empty: no round-trip or AutoTokenizer check")
        return {"round_trip_exact": None, "autotokenizer_match": None, "documents": 0}
    info = meta["splits"]["val"]
    tokens = read_tokens(tokens_dir / info["file"], meta["dtype"])
    offsets = info["doc_offsets"]
    ids = [tokens[offsets[i]:offsets[i + 1] - 1].tolist() for i in range(len(val))]
    texts, names = [d.text for d in val], [d.path for d in val]
    lossy = round_trip_failures(tok, texts, ids, names)
    if lossy and not tok.lossless:  # allowed for a pretrained tokenizer: the rate is reported
        log.warning("tokenize: decode(encode(doc)) != doc for %d of %d val documents (first: %s); bits "
                    "per byte stay over the original bytes", len(lossy), len(val), lossy[0])
    elif lossy:
        # A lossy tokenizer would make every later number (bits per byte) wrong: stop here.
        raise StageError(f"decode(encode(doc)) != doc for {len(lossy)} of {len(val)} val documents "
                         f"(first: {lossy[0]}); this is a tokenizer bug, please report it")
    mismatched = autotokenizer_failures(load_autotokenizer(tokenizer_dir, tok), texts, ids, names,
                                        as_user_calls=tok.lossless)
    if mismatched:
        log.warning("tokenize: AutoTokenizer ids differ from the token files on %d of %d val documents "
                    "(first: %s)", len(mismatched), len(val), mismatched[0])
    return {"round_trip_exact": 1 - len(lossy) / len(val),
            "autotokenizer_match": 1 - len(mismatched) / len(val), "documents": len(val)}


def metrics_of(tok: CodexTokenizer, params: TokenizerParams, packed: dict[str, PackedSplit],
               meta: dict[str, Any], checks: dict[str, Any]) -> dict[str, Any]:
    def ratio(a: int, b: int) -> float | None:
        return float(f"{a / b:.6g}") if b else None  # an empty split has no rate, not a made-up one

    text_tokens = {s: p.tokens - len(p.doc_paths) for s, p in packed.items()}  # EOS is not text
    extra = {"base_model": tok.base} if isinstance(tok, PretrainedTokenizer) else {}
    return {
        **extra,
        "backend": tok.backend,
        "model_type": None if extra else params.model_type,
        "vocab_size": tok.vocab_size,
        "dtype": meta["dtype"],
        "documents": {s: len(p.doc_paths) for s, p in packed.items()},
        "bytes": {s: p.bytes for s, p in packed.items()},
        "tokens": text_tokens,
        "tokens_per_byte": {s: ratio(text_tokens[s], p.bytes) for s, p in packed.items()},
        "bytes_per_token": {s: ratio(p.bytes, text_tokens[s]) for s, p in packed.items()},
        "byte_fallback_rate": {s: ratio(p.byte_fallback_tokens, text_tokens[s]) for s, p in packed.items()},
        "round_trip_exact": (round(checks["round_trip_exact"], 6)  # fraction of val documents
                             if checks["round_trip_exact"] is not None else None),
        "autotokenizer_match": (round(checks["autotokenizer_match"], 6)
                                if checks["autotokenizer_match"] is not None else None),
        "checked_documents": checks["documents"],
    }
