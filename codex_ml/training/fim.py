"""train.fim: the tokenizer's FIM sentinels checked before any work, and the FIM transform that the train
windows go through (codex_ml/fim/windows.py; docs/fim.md).

The tokenize stage's files stay left to right: a change of train.fim retrains without re-tokenizing.
A trained tokenizer always holds the sentinels (ids 4-6); a pretrained base must bring its own
(codex_ml/fim/sentinels.py), and must spell text back byte for byte, since FIM cuts documents at
characters: either refusal is one error naming model.pretrained, before anything is read or written.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from codex_ml.base_model import PretrainedBase
from codex_ml.fim.sentinels import Sentinels, require_sentinels
from codex_ml.fim.token_bytes import TokenBytes, check_round_trip
from codex_ml.fim.windows import FimConfig, FimWindows
from codex_ml.handoffs import TokenMeta
from codex_ml.params import FimParams
from codex_ml.runtime import StageError
from codex_ml.shards import TokenStream, read_index

ROUND_TRIP_DOCUMENTS = 32  # train documents re-encoded to check the text comes back byte for byte,
ROUND_TRIP_CHARACTERS = 4000  # the first this many characters of each


@dataclass(frozen=True)
class FimTokenizer:
    """The tokenizer FIM re-encodes with, its sentinels, and who owns it (for messages)."""

    hf: Tokenizer
    sentinels: Sentinels
    owner: str


def check_fim(fim: FimParams, tokenizer_dir: Path, base: PretrainedBase | None) -> FimTokenizer | None:
    """None when train.fim.rate is 0; else the tokenizer with its sentinels, or one FimError naming
    model.pretrained (or the tokenizer folder) and the tokens it lacks."""
    if fim.rate == 0:
        return None
    from transformers import AutoTokenizer

    owner = f"model.pretrained {base.name}" if base else str(tokenizer_dir)
    hint = ("set train.fim.rate: 0 (left to right only), or use a base whose tokenizer has them" if base else
            "rerun the tokenize stage (dvc repro tokenize), or set train.fim.rate: 0")
    tokenizer = AutoTokenizer.from_pretrained(str(base.folder if base else tokenizer_dir))
    sentinels = require_sentinels(tokenizer, owner, hint)
    if not getattr(tokenizer, "is_fast", False):
        raise StageError(f"{owner}: FIM re-encodes text with the `tokenizers` library, and this tokenizer "
                         f"has no fast (tokenizer.json) form: set train.fim.rate: 0")
    return FimTokenizer(tokenizer.backend_tokenizer, sentinels, owner)


def fim_windows(fim: FimParams, seed: int, tok: FimTokenizer, tokens_dir: Path, meta: TokenMeta,
                train: TokenStream) -> tuple[FimWindows, np.ndarray]:
    """The transform of train.fim (seeded by train.seed) and the train split's document offsets, after
    checking that a sample of train documents spells its text back byte for byte."""
    table = TokenBytes(tok.hf)
    offsets = read_index(tokens_dir / meta.split("train", tokens_dir).index).offsets()
    picks = np.linspace(0, len(offsets) - 2, min(ROUND_TRIP_DOCUMENTS, len(offsets) - 1)).astype(np.int64)
    texts = [table.text(train[int(offsets[d]):int(offsets[d + 1]) - 1]) for d in picks.tolist()]
    check_round_trip(tok.hf, table, [t[:ROUND_TRIP_CHARACTERS] for t in texts if t is not None], tok.owner)
    config = FimConfig(rate=fim.rate, spm_rate=fim.spm_rate, seed=seed, level=fim.level,
                       sentinels=tok.sentinels.ids(), eos_id=meta.eos_id, pad_id=meta.pad_id)
    return FimWindows(config, tok.hf, table), offsets
