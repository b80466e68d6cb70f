"""The `pretrained` backend: a pretrained model's own tokenizer, used as is (nothing is trained).

A model only understands the ids of the tokenizer it was trained with, so with `model.pretrained` set
the tokenize stage encodes with that tokenizer (loaded by `transformers.AutoTokenizer` from the model
folder) and saves it to models/tokenizer, whence train copies it into models/model.

Choices, so that packed streams mean what the rest of the pipeline assumes:
- documents are encoded without special tokens (no BOS a tokenizer would add itself) and the packed
  stream puts the tokenizer's EOS after each one, as for the trained backends;
- special-token text inside a document ("<|endoftext|>" in a string literal) is text, never a control
  token (as for the trained backends). The saved tokenizer keeps the model's own behaviour (chat
  templates still get their special ids), so on such a document AutoTokenizer's ids differ from the
  token files: `autotokenizer_match` in metrics/tokenize.json counts it;
- a tokenizer without a pad token pads with its EOS (saved so: pad_token = eos_token). Padded
  positions are never scored or trained on, so the choice changes no number;
- a tokenizer that is not lossless on code (a normaliser, a dummy prefix, an unknown token) is
  allowed: the round-trip rate is reported, and bits per byte are still over the original bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import ValidationError
from tokenizers import Tokenizer

from codex_ml.base_model import PretrainedBase
from codex_ml.handoffs import BaseRecord, problems
from codex_ml.io import write_json
from codex_ml.tokenization.codex_tokenizer import (
    CONFIG_FILE,
    FORMAT_VERSION,
    CodexTokenizer,
    SpecialIds,
    TokenizerError,
)
from codex_ml.tokenization.hf_bpe import unicode_to_byte

BACKEND = "pretrained"


class PretrainedTokenizer(CodexTokenizer):
    backend: ClassVar[str] = BACKEND
    lossless: ClassVar[bool] = False  # a round-trip failure is a reported rate, not a stage error

    def __init__(self, auto: Any, base: BaseRecord) -> None:  # no super().__init__: no codex specials
        if not getattr(auto, "is_fast", False) or getattr(auto, "backend_tokenizer", None) is None:
            raise TokenizerError(f"{base.pretrained}: the tokenizer has no `tokenizers` backend "
                                 f"(tokenizer.json); only fast tokenizers are supported")
        # A copy: the flag is runtime state of the Rust tokenizer, and `auto` (what is saved and what
        # users load) keeps the model's own handling of special-token text.
        self.hf = Tokenizer.from_str(auto.backend_tokenizer.to_str())
        self.hf.encode_special_tokens = True  # special-token text in a document is text
        self.auto, self.base = auto, base
        eos = auto.eos_token_id
        if eos is None:
            raise TokenizerError(f"{base.pretrained}: the tokenizer has no EOS token, which the "
                                 f"packed streams put between documents")
        if auto.pad_token_id is None:
            auto.pad_token = auto.eos_token  # the documented choice: pad with EOS
        self.special_ids = SpecialIds(pad=int(auto.pad_token_id), bos=auto.bos_token_id, eos=int(eos),
                                      unk=auto.unk_token_id)

    @classmethod
    def from_base(cls, base: PretrainedBase) -> PretrainedTokenizer:
        return cls(_auto(base.folder), base.record())

    @classmethod
    def load(cls, folder: Path, config: dict[str, Any]) -> PretrainedTokenizer:
        try:
            base = BaseRecord.model_validate(config.get("base"))
        except ValidationError as exc:
            raise TokenizerError(f"{folder / CONFIG_FILE}: base: expected the record of the pretrained model "
                                 f"({problems(exc)})") from None
        return cls(_auto(folder), base)

    @property
    def vocab_size(self) -> int:
        return len(self.auto)

    def encode_batch(self, texts: Sequence[str], threads: int) -> list[list[int]]:
        return [e.ids for e in self.hf.encode_batch_fast(list(texts), add_special_tokens=False)]

    def decode(self, ids: Sequence[int]) -> str:
        return str(self.hf.decode(list(ids), skip_special_tokens=True))

    def byte_fallback_table(self) -> np.ndarray:
        """Byte-level vocabularies (GPT-2 style): tokens that are not whole UTF-8 characters;
        SentencePiece-style ones: the <0xNN> byte pieces; anything else: none known."""
        table = np.zeros(self.vocab_size, dtype=bool)
        vocab = self.hf.get_vocab(with_added_tokens=True)
        byte_level = "ByteLevel" in type(self.hf.decoder).__name__
        to_byte = unicode_to_byte()
        for token, i in vocab.items():
            if i >= len(table):
                continue
            if len(token) == 6 and token.startswith("<0x") and token.endswith(">"):
                table[i] = True
            elif byte_level and all(c in to_byte for c in token):
                try:
                    bytes(to_byte[c] for c in token).decode("utf-8")
                except UnicodeDecodeError:
                    table[i] = True
        return table

    def config(self) -> dict[str, Any]:
        return {"base": self.base.model_dump()}

    def _save_backend_files(self, folder: Path) -> None:
        pass

    def save(self, folder: str | Path) -> None:
        """The model's tokenizer files as AutoTokenizer saves them, plus codex_tokenizer.json."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.auto.save_pretrained(str(folder))
        ids = {f"{k}_id": getattr(self.special_ids, k) for k in ("pad", "bos", "eos", "unk")}
        write_json(folder / CONFIG_FILE, {"format": FORMAT_VERSION, "backend": self.backend,
                                          "vocab_size": self.vocab_size, **ids, **self.config()})


def _auto(folder: Path) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(folder))
    except (OSError, ValueError, KeyError) as exc:
        raise TokenizerError(f"{folder}: cannot load its tokenizer with AutoTokenizer: "
                             f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
