"""The tokenize stage's work: train a tokenizer on the train split (or, with `model.pretrained`, take
the model's own: tokenization/pretrained_tokenizer.py), save it loadable by transformers, pack every
split into token files, check the result, write metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from codex_ml.base_model import PretrainedBase
from codex_ml.handoffs import TokenMeta, token_dtype_name
from codex_ml.io import atomic_dir, write_json
from codex_ml.params import DataParams, TokenizerParams
from codex_ml.paths import SPLITS
from codex_ml.runtime import StageError, log
from codex_ml.shards import SplitIndex, open_stream, read_index
from codex_ml.tokenization import CodexTokenizer, PretrainedTokenizer, configure_threads, train_tokenizer
from codex_ml.tokenization.pack import PackedSplit, pack_split, read_documents
from codex_ml.tokenization.sample import Sample, training_sample
from codex_ml.tokenization.validate import autotokenizer_failures, load_autotokenizer, round_trip_failures

# The val documents decoded and re-encoded by AutoTokenizer after packing: all of a small split, the
# first few MiB of a large one (the check is a tokenizer bug detector, not a statistic).
CHECK_BYTES = 4 << 20
READ_BACK_TOKENS = 1 << 22  # tokens per block when the written shards are read back and checked


def tokenize(params: TokenizerParams, prepared_dir: Path, tokenizer_dir: Path, tokens_dir: Path,
             metrics_path: Path, base: PretrainedBase | None = None,
             data: DataParams | None = None) -> dict[str, Any]:
    """Run the whole stage. Both output folders are built aside and swapped in only after every
    check passed; metrics are written last. With `base` (a resolved model.pretrained), its own
    tokenizer encodes and nothing is trained; otherwise the tokenizer learns from a seeded sample of
    at most tokenizer.sample_mb of the train split (all of it when smaller). With tokenizer.engine
    datatrove, shards are packed by datatrove tasks on `data`'s executor (data.executor)."""
    data = data if data is not None else DataParams()
    if params.engine == "datatrove":  # before training: an executor that cannot run stops the stage now
        from codex_ml.tokenization.tokenize_tasks import check_executor

        check_executor(data)
    threads = configure_threads(params.workers)
    tok, sample = (base_tokenizer(base, prepared_dir), None) if base is not None else \
        learn_tokenizer(params, prepared_dir)
    with atomic_dir(tokenizer_dir) as tok_tmp, atomic_dir(tokens_dir) as tokens_tmp:
        tok.save(tok_tmp)
        if params.engine == "datatrove":  # the same files, packed by datatrove tasks (tokenize_tasks.py)
            from codex_ml.tokenization.tokenize_tasks import pack_by_tasks

            packed = pack_by_tasks(tok_tmp, prepared_dir, tokens_tmp, threads, data)
        else:
            table = tok.byte_fallback_table()
            packed = {split: pack_split(tok, prepared_dir, split, tokens_tmp, threads, table)
                      for split in SPLITS}
        meta = TokenMeta(dtype=token_dtype_name(tok.vocab_size), vocab_size=tok.vocab_size,
                         backend=tok.backend, pad_id=tok.special_ids.pad, bos_id=tok.special_ids.bos,
                         eos_id=tok.special_ids.eos, unk_id=tok.special_ids.unk,
                         splits={split: packed[split].meta() for split in SPLITS},
                         # which tokenizer made these ids: train checks it
                         base_model=tok.base if isinstance(tok, PretrainedTokenizer) else None)
        meta.save(tokens_tmp)
        indexes = check_token_files(tokens_tmp, meta)
        checks = check_val_text(tok, tok_tmp, tokens_tmp, meta, indexes["val"], prepared_dir)
    metrics = metrics_of(tok, params, packed, meta, checks, sample)
    write_json(metrics_path, metrics)
    return metrics


def base_tokenizer(base: PretrainedBase, prepared_dir: Path) -> PretrainedTokenizer:
    """model.pretrained's own tokenizer: nothing is trained."""
    if not any(True for _ in read_documents(prepared_dir, "train")):
        raise StageError(f"{prepared_dir}: the train split has no documents")
    tok = PretrainedTokenizer.from_base(base)
    log.info("tokenize: model.pretrained %s: encoding with its own tokenizer (%d tokens); nothing is "
             "trained, so tokenizer.vocab_size and tokenizer.model_type are not used", base.name,
             tok.vocab_size)
    return tok


def learn_tokenizer(params: TokenizerParams, prepared_dir: Path) -> tuple[CodexTokenizer, Sample]:
    """tokenizer.backend trained on a sample of the train split (tokenization/sample.py)."""
    sample = training_sample(prepared_dir, params.sample_mb << 20, params.seed)
    if not sample.texts:
        raise StageError(f"{prepared_dir}: no documents in the train split to train the tokenizer on")
    if sample.bytes < sample.of_bytes:
        log.info("tokenize: learning from a sample of %d of %d train documents (%.1f of %.1f MiB; "
                 "tokenizer.sample_mb=%d)", len(sample.texts), sample.of_documents, sample.bytes / 2**20,
                 sample.of_bytes / 2**20, params.sample_mb)
    tok = train_tokenizer(sample.texts, params)
    sample.release()  # the sample's text is not needed past training
    log.info("tokenize: trained %s (%s) with %d tokens", tok.backend, params.model_type, tok.vocab_size)
    if tok.vocab_size < params.vocab_size:  # BPE ran out of pairs seen twice: a small corpus
        log.warning("tokenize: the corpus gave only %d of tokenizer.vocab_size=%d tokens; meta.json and "
                    "the model use %d", tok.vocab_size, params.vocab_size, tok.vocab_size)
    return tok, sample


def check_token_files(tokens_dir: Path, meta: TokenMeta) -> dict[str, SplitIndex]:
    """Read the token files back as training will and check them against meta.json and the index:
    every document ends with EOS, every id is in the vocabulary. Returns each split's index."""
    indexes: dict[str, SplitIndex] = {}
    for split, info in meta.splits.items():
        stream = open_stream(tokens_dir, meta, split)
        index = indexes[split] = read_index(tokens_dir / info.index)
        offsets = index.offsets()
        if len(index.paths) != info.documents or offsets[-1] != len(stream):
            raise StageError(f"{split}: the index lists {len(index.paths)} documents of {offsets[-1]} "
                             f"tokens, meta.json {info.documents} of {len(stream)}")
        # Read back in blocks with plain reads, not through the memory map: mapped pages a scan
        # touches count as the process's memory, which would then grow with the corpus.
        eos_at = offsets[1:] - 1  # every document's last token, in the split's stream
        start = 0
        for shard in info.shards:
            with open(tokens_dir / shard.file, "rb") as f:
                while len(block := np.fromfile(f, dtype=meta.dtype, count=READ_BACK_TOKENS)):
                    here = eos_at[(eos_at >= start) & (eos_at < start + len(block))] - start
                    if not np.all(block[here] == meta.eos_id):
                        raise StageError(f"{shard.file}: a document does not end with EOS (id {meta.eos_id})")
                    if int(block.max()) >= meta.vocab_size:
                        raise StageError(f"{shard.file}: token id {int(block.max())} >= vocab_size "
                                         f"{meta.vocab_size}")
                    start += len(block)
    return indexes


def check_val_text(tok: CodexTokenizer, tokenizer_dir: Path, tokens_dir: Path, meta: TokenMeta,
                   val: SplitIndex, prepared_dir: Path) -> dict[str, Any]:
    """On the first CHECK_BYTES of val: the stored ids decode to the documents, and AutoTokenizer
    loaded from the saved folder gives the same ids."""
    if not val.paths:
        log.warning("tokenize: the val split is empty: no round-trip or AutoTokenizer check")
        return {"round_trip_exact": None, "autotokenizer_match": None, "documents": 0}
    stream = open_stream(tokens_dir, meta, "val")
    offsets = val.offsets()
    texts: list[str] = []
    names: list[str] = []
    ids: list[list[int]] = []
    checked = 0
    for i, doc in enumerate(read_documents(prepared_dir, "val")):
        if checked >= CHECK_BYTES:
            break
        checked += doc.bytes
        texts.append(doc.text)
        names.append(doc.path)
        ids.append(stream[int(offsets[i]):int(offsets[i + 1]) - 1].tolist())
    lossy = round_trip_failures(tok, texts, ids, names)
    if lossy and not tok.lossless:  # allowed for a pretrained tokenizer: the rate is reported
        log.warning("tokenize: decode(encode(doc)) != doc for %d of %d val documents (first: %s); bits "
                    "per byte stay over the original bytes", len(lossy), len(texts), lossy[0])
    elif lossy:
        # A lossy tokenizer would make every later number (bits per byte) wrong: stop here.
        raise StageError(f"decode(encode(doc)) != doc for {len(lossy)} of {len(texts)} val documents "
                         f"(first: {lossy[0]}); this is a tokenizer bug, please report it")
    mismatched = autotokenizer_failures(load_autotokenizer(tokenizer_dir, tok), texts, ids, names,
                                        as_user_calls=tok.lossless)
    if mismatched:
        log.warning("tokenize: AutoTokenizer ids differ from the token files on %d of %d val documents "
                    "(first: %s)", len(mismatched), len(texts), mismatched[0])
    return {"round_trip_exact": 1 - len(lossy) / len(texts),
            "autotokenizer_match": 1 - len(mismatched) / len(texts), "documents": len(texts)}


def metrics_of(tok: CodexTokenizer, params: TokenizerParams, packed: dict[str, PackedSplit],
               meta: TokenMeta, checks: dict[str, Any], sample: Sample | None) -> dict[str, Any]:
    def ratio(a: int, b: int) -> float | None:
        return float(f"{a / b:.6g}") if b else None  # an empty split has no rate, not a made-up one

    text_tokens = {s: p.tokens - p.documents for s, p in packed.items()}  # EOS is not text
    extra = {"base_model": tok.base.model_dump()} if isinstance(tok, PretrainedTokenizer) else {}
    return {
        **extra,
        "backend": tok.backend,
        "model_type": None if extra else params.model_type,
        "vocab_size": tok.vocab_size,
        "dtype": meta.dtype,
        "documents": {s: p.documents for s, p in packed.items()},
        "shards": {s: len(p.shards) for s, p in packed.items()},
        "tokenizer_sample": sample.metrics(params.sample_mb, params.seed) if sample is not None else None,
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
