"""What train reads: the tokenize stage's token files (data/tokens: meta.json through handoffs.TokenMeta,
the train and val streams memory-mapped), checked to be made by the tokenizer the model needs."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from codex_ml.base_model import PretrainedBase, folder_sha256, tokenizer_sha256
from codex_ml.handoffs import META_FILE, TokenMeta
from codex_ml.io import sha256_bytes, sha256_file
from codex_ml.runtime import StageError
from codex_ml.shards import TokenStream, open_stream, token_files

TRAINED_ON = ("train", "val")  # the splits training reads: test is eval's alone


@dataclass(frozen=True)
class TokenData:
    """data/tokens/: meta.json and the memory-mapped train and val streams."""

    dir: Path
    meta: TokenMeta
    train: TokenStream
    val: TokenStream

    def fingerprint(self) -> str:
        """sha256 over meta.json, and the shards and index of train and val: a different tokenization
        is different data."""
        files = [self.dir / META_FILE]
        files += [f for s in TRAINED_ON for f in token_files(self.dir, self.meta, s)]
        return sha256_bytes("-".join(sha256_file(f) for f in files).encode())


def load_token_data(tokens_dir: Path) -> TokenData:
    """Open data/tokens as docs/pipeline.md describes it; StageError naming what does not fit."""
    meta = TokenMeta.load(tokens_dir)
    streams = {}
    for split in TRAINED_ON:
        tokens = open_stream(tokens_dir, meta, split)
        if tokens.max() >= meta.vocab_size:  # would crash the embedding lookup
            raise StageError(f"{tokens_dir}: {split} token id {tokens.max()} >= vocab_size {meta.vocab_size}")
        streams[split] = tokens
    return TokenData(dir=tokens_dir, meta=meta, train=streams["train"], val=streams["val"])


def check_made_by(data: TokenData, tokenizer_dir: Path, base: PretrainedBase | None) -> None:
    """With a pretrained model, data/tokens and models/tokenizer must be its own tokenizer's, and
    meta.json must record the base model as it is now (its lineage): one StageError otherwise."""
    if base is None:
        return
    want = tokenizer_sha256(base.folder)
    made = data.meta.base_model.tokenizer_sha256 if data.meta.base_model else None
    config_path = tokenizer_dir / "codex_tokenizer.json"
    saved = json.loads(config_path.read_text(encoding="utf-8")) if config_path.is_file() else {}
    saved_sha = (saved.get("base") or {}).get("tokenizer_sha256")
    if made != want or saved_sha != want:
        by = (f"a tokenizer with sha256 {made[:12]}" if made else
              f"the {data.meta.backend} tokenizer the tokenize stage trained")
        where = data.dir / META_FILE if made != want else config_path
        raise StageError(f"{where}: the token files were made by {by}, not by model.pretrained "
                         f"{base.name}'s own tokenizer (sha256 {want[:12]}): rerun the tokenize stage with "
                         f"model.pretrained set (dvc repro tokenize)")
    assert data.meta.base_model is not None  # made == want above
    recorded = data.meta.base_model.sha256
    if recorded != folder_sha256(base.folder):
        raise StageError(f"{data.dir / META_FILE}: model.pretrained {base.name} changed since the tokenize "
                         f"stage recorded it (sha256 {recorded[:12]}): rerun tokenize (dvc repro -f "
                         f"tokenize) so the token files record the base this model is trained from")


def unigram_entropy(tokens: TokenStream, vocab_size: int) -> float:
    """Entropy (nats/token) of the tokens' unigram distribution: the loss of the best model that
    ignores context, so a trained model's val loss must land well below it."""
    counts = tokens.bincount(vocab_size).astype(np.float64)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())
