"""The `hf-bpe` backend: byte-level BPE from Hugging Face `tokenizers` (GPT-2 style).

Every byte has a token, so any text encodes and decodes exactly with no unknown token, and the saved
tokenizer.json is the backend itself: `AutoTokenizer` loads the very same model.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from codex_ml.params import TokenizerParams
from codex_ml.tokenization.codex_tokenizer import FIM_TOKENS, SPECIAL_TOKENS, CodexTokenizer

# Merges seen once are noise from a single spot in the corpus; this is the usual floor.
MIN_FREQUENCY = 2


def train_hf_bpe(texts: Sequence[str], params: TokenizerParams) -> ByteLevelBPETokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=params.vocab_size, min_frequency=MIN_FREQUENCY,
        special_tokens=[*SPECIAL_TOKENS.values(), *FIM_TOKENS.values()],  # ids 0-6, in this order
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    # The trainer counts words in parallel but merges deterministically (ties broken by pair):
    # measured byte-identical across thread counts and hash seeds.
    tok.train_from_iterator(texts, trainer, length=len(texts))
    return ByteLevelBPETokenizer(tok)


class ByteLevelBPETokenizer(CodexTokenizer):
    backend: ClassVar[str] = "hf-bpe"

    @classmethod
    def load(cls, folder: Path, config: dict[str, Any], hf: Tokenizer) -> ByteLevelBPETokenizer:
        return cls(hf)

    def config(self) -> dict[str, Any]:
        return {"model_type": "bpe", "encoder": "tokenizers"}

    def _save_backend_files(self, folder: Path) -> None:
        pass  # tokenizer.json is the whole model

    def encode_batch(self, texts: Sequence[str], threads: int) -> list[list[int]]:
        # encode_batch_fast skips offsets; the thread count is the Rust pool's (configure_threads).
        return [e.ids for e in self.hf.encode_batch_fast(list(texts), add_special_tokens=False)]

    def decode(self, ids: Sequence[int]) -> str:
        return str(self.hf.decode(list(ids), skip_special_tokens=True))

    def byte_fallback_table(self) -> np.ndarray:
        table = np.zeros(self.vocab_size, dtype=bool)
        to_byte = unicode_to_byte()
        specials = {*SPECIAL_TOKENS.values(), *FIM_TOKENS.values()}
        for token, i in self.hf.get_vocab(with_added_tokens=True).items():
            if token in specials:
                continue
            try:
                bytes(to_byte[c] for c in token).decode("utf-8")
            except UnicodeDecodeError:
                table[i] = True
        return table


@cache
def unicode_to_byte() -> dict[str, int]:
    """Inverse of byte-level BPE's byte -> printable character map (GPT-2's bytes_to_unicode)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
                 *range(ord("®"), ord("ÿ") + 1)]
    chars = list(printable)
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, chars, strict=True)}
