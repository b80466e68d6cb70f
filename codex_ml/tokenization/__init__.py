"""Tokenizers: train (sentencepiece or hf-bpe) or take a pretrained model's own (pretrained), save
loadable by transformers, load, pack token files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from codex_ml.params import TokenizerParams
from codex_ml.tokenization.codex_tokenizer import (
    CONFIG_FILE,
    HF_TOKENIZER_FILE,
    CodexTokenizer,
    SpecialIds,
    TokenizerError,
    check_special_ids,
    configure_threads,
    load_hf_tokenizer,
    read_config,
)
from codex_ml.tokenization.hf_bpe import ByteLevelBPETokenizer, train_hf_bpe
from codex_ml.tokenization.pretrained_tokenizer import PretrainedTokenizer
from codex_ml.tokenization.sentencepiece_backend import SentencePieceTokenizer, train_sentencepiece

BACKENDS: dict[str, type[SentencePieceTokenizer] | type[ByteLevelBPETokenizer]] = {
    "sentencepiece": SentencePieceTokenizer,
    "hf-bpe": ByteLevelBPETokenizer,
}

__all__ = ["BACKENDS", "CodexTokenizer", "PretrainedTokenizer", "SpecialIds", "TokenizerError",
           "configure_threads", "load_tokenizer", "train_tokenizer"]


def train_tokenizer(texts: Sequence[str], params: TokenizerParams) -> CodexTokenizer:
    """Train the backend `params.backend` on `texts` (deterministic for the same texts and params)."""
    if not any(texts):
        raise TokenizerError("tokenizer: nothing to train on (no non-empty text)")
    if params.backend == "sentencepiece":
        return train_sentencepiece(texts, params)
    return train_hf_bpe(texts, params)


def load_tokenizer(folder: str | Path) -> CodexTokenizer:
    """Load a saved tokenizer folder; anything missing or corrupt is one TokenizerError."""
    folder = Path(folder)
    config = read_config(folder)
    backend = config.get("backend")
    tok: CodexTokenizer
    if backend == PretrainedTokenizer.backend:
        tok = PretrainedTokenizer.load(folder, config)
    elif backend in BACKENDS:
        tok = BACKENDS[backend].load(folder, config, load_hf_tokenizer(folder / HF_TOKENIZER_FILE))
    else:
        raise TokenizerError(f"{folder / CONFIG_FILE}: backend: expected one of "
                             f"{', '.join([*BACKENDS, PretrainedTokenizer.backend])}, got {backend!r}")
    check_special_ids(tok, config, folder / CONFIG_FILE)
    return tok
