"""What every tokenizer backend shares: special tokens, the saved folder, loading with clear errors.

A saved tokenizer folder (`models/tokenizer/`) holds:

- `tokenizer.json` + `tokenizer_config.json`: a `tokenizers` tokenizer that encodes exactly as the
  backend does, so `transformers.AutoTokenizer.from_pretrained(folder)` is the same tokenizer;
- `codex_tokenizer.json`: which backend made it, its special-token ids (FIM sentinels included) and
  training settings;
- the backend's own files (`sentencepiece.model` for the sentencepiece backend).
"""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from tokenizers import Tokenizer

from codex_ml.fim.sentinels import TRAINED
from codex_ml.io import write_json
from codex_ml.runtime import StageError, resolve_cores

CONFIG_FILE = "codex_tokenizer.json"
HF_TOKENIZER_FILE = "tokenizer.json"
FORMAT_VERSION = 1

# Both backends put the special tokens first, in this order, so ids 0-3 mean the same everywhere.
SPECIAL_TOKENS = {"unk": "<unk>", "bos": "<s>", "eos": "</s>", "pad": "<pad>"}
# The fill-in-the-middle sentinels follow them, ids 4-6 (codex_ml/fim/sentinels.py), in every trained
# tokenizer whatever train.fim says, so changing the FIM rate never retokenizes. Declared in
# tokenizer_config.json as named special tokens: AutoTokenizer's `fim_prefix_token_id` and so on.
FIM_TOKENS = {"fim_prefix": TRAINED.prefix, "fim_middle": TRAINED.middle, "fim_suffix": TRAINED.suffix}


class TokenizerError(StageError):
    """A missing, incomplete or corrupt tokenizer folder (or one that cannot be trained); one line."""


@dataclass(frozen=True)
class SpecialIds:
    pad: int
    bos: int | None  # a pretrained tokenizer may have no BOS (Qwen2) or no unknown token (byte-level)
    eos: int
    unk: int | None


def resolve_threads(threads: int) -> int:
    """0 means every core this process may run on."""
    return resolve_cores(threads)


def configure_threads(threads: int) -> int:
    """Resolve the encoding thread count and hand it to `tokenizers`' Rust thread pool.

    The pool reads RAYON_NUM_THREADS once, when it first runs in parallel, so entry points call
    this before any encoding. Thread counts never change outputs, only speed."""
    n = resolve_threads(threads)
    os.environ["RAYON_NUM_THREADS"] = str(n)
    return n


class CodexTokenizer(ABC):
    """A trained tokenizer: batch encode/decode with its backend, and `hf`, the exact `tokenizers`
    equivalent that `AutoTokenizer` loads from the saved folder."""

    backend: ClassVar[str]
    lossless: ClassVar[bool] = True  # the trained backends promise decode(encode(text)) == text

    def __init__(self, hf: Tokenizer) -> None:
        # Text such as "</s>" inside a document is text, never a special token: the backends treat
        # it so, and a packed stream must hold exactly one EOS per document.
        hf.encode_special_tokens = True
        self.hf = hf
        ids: dict[str, int] = {}
        for name, token in SPECIAL_TOKENS.items():
            i = hf.token_to_id(token)
            if i is None:
                raise TokenizerError(f"{HF_TOKENIZER_FILE} has no special token {token}")
            ids[name] = int(i)
        self.special_ids = SpecialIds(**ids)
        p, m, s = (hf.token_to_id(t) for t in FIM_TOKENS.values())
        # None: a folder saved before the sentinels existed (it loads; FIM refuses it)
        self.fim_ids = (p, m, s) if p is not None and m is not None and s is not None else None

    # --- what each backend provides -----------------------------------------------------------

    @abstractmethod
    def encode_batch(self, texts: Sequence[str], threads: int) -> list[list[int]]:
        """Token ids of each text (no BOS/EOS), encoded with `threads` threads."""

    @abstractmethod
    def decode(self, ids: Sequence[int]) -> str:
        """The text of `ids`; special tokens (pad, bos, eos) decode to nothing."""

    @abstractmethod
    def byte_fallback_table(self) -> np.ndarray:
        """A boolean per id: True where the token stands for raw bytes rather than whole characters
        (sentencepiece: its <0xNN> byte-fallback pieces; byte-level BPE: tokens whose bytes are not
        valid UTF-8 on their own, i.e. pieces of a character the vocabulary has no token for)."""

    @abstractmethod
    def config(self) -> dict[str, Any]:
        """Backend settings recorded in codex_tokenizer.json (what was trained, not how fast)."""

    @abstractmethod
    def _save_backend_files(self, folder: Path) -> None:
        """Write the backend's own files into `folder`."""

    # --- shared ---------------------------------------------------------------------------------

    @property
    def vocab_size(self) -> int:
        return int(self.hf.get_vocab_size(with_added_tokens=True))

    def encode(self, text: str) -> list[int]:
        return self.encode_batch([text], 1)[0]

    def pieces(self, ids: Sequence[int]) -> list[str]:
        """Each id's token as the `tokenizers` vocabulary spells it (what AutoTokenizer shows)."""
        out = []
        for i in ids:
            token = self.hf.id_to_token(i)
            if token is None:
                raise TokenizerError(f"token id {i} is not in the vocabulary (size {self.vocab_size})")
            out.append(token)
        return out

    def save(self, folder: str | Path) -> None:
        """Write the whole tokenizer folder (into an existing, empty folder; callers swap it in
        atomically with codex_ml.io.atomic_dir)."""
        from transformers import PreTrainedTokenizerFast  # heavy import, needed only when saving

        folder = Path(folder)
        fim = dict(zip(FIM_TOKENS, self.fim_ids, strict=True)) if self.fim_ids else {}
        folder.mkdir(parents=True, exist_ok=True)
        fast = PreTrainedTokenizerFast(
            tokenizer_object=self.hf,
            unk_token=SPECIAL_TOKENS["unk"], bos_token=SPECIAL_TOKENS["bos"],
            eos_token=SPECIAL_TOKENS["eos"], pad_token=SPECIAL_TOKENS["pad"],
            # Exactness: never merge " ." into "." on decode, and keep special-token text as text.
            clean_up_tokenization_spaces=False, split_special_tokens=True,
            model_max_length=int(1e30),  # transformers' "no limit": documents are any length
            **({"extra_special_tokens": {f"{k}_token": t for k, t in FIM_TOKENS.items()}} if fim else {}),
        )
        fast.save_pretrained(str(folder))
        self._save_backend_files(folder)
        write_json(folder / CONFIG_FILE, {
            "format": FORMAT_VERSION, "backend": self.backend, "vocab_size": self.vocab_size,
            "special_tokens": SPECIAL_TOKENS, **{f"{k}_id": v for k, v in asdict(self.special_ids).items()},
            **({"fim_tokens": FIM_TOKENS, **{f"{k}_id": v for k, v in fim.items()}} if fim else {}),
            **self.config(),
        })


def read_config(folder: Path) -> dict[str, Any]:
    """codex_tokenizer.json of a tokenizer folder, or one TokenizerError saying what is wrong."""
    if not folder.exists():
        raise TokenizerError(f"{folder}: no such tokenizer folder (make one with `dvc repro tokenize` "
                             f"or `codex tokenizer train`)")
    if not folder.is_dir():
        raise TokenizerError(f"{folder}: not a folder (a tokenizer is a folder such as models/tokenizer)")
    path = folder / CONFIG_FILE
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TokenizerError(f"{folder}: not a codex tokenizer folder ({CONFIG_FILE} is missing)") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TokenizerError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(config, dict):
        raise TokenizerError(f"{path}: expected a JSON object")
    if config.get("format") != FORMAT_VERSION:
        raise TokenizerError(f"{path}: format: expected {FORMAT_VERSION}, got {config.get('format')!r}")
    return config


def load_hf_tokenizer(path: Path) -> Tokenizer:
    if not path.is_file():
        raise TokenizerError(f"{path.parent}: incomplete tokenizer folder ({path.name} is missing)")
    try:
        return Tokenizer.from_file(str(path))
    except Exception as exc:  # tokenizers raises plain Exception for any parse error
        raise TokenizerError(f"{path}: not a valid tokenizers file ({exc})") from None


def check_special_ids(tok: CodexTokenizer, config: dict[str, Any], path: Path) -> None:
    """The ids codex_tokenizer.json promises must be the ones tokenizer.json has."""
    for name, got in asdict(tok.special_ids).items():
        if config.get(f"{name}_id") != got:
            raise TokenizerError(f"{path}: {name}_id is {config.get(f'{name}_id')!r} but "
                                 f"{HF_TOKENIZER_FILE} has {SPECIAL_TOKENS[name]} at id {got}"
                                 if config.get("backend") != "pretrained" else
                                 f"{path}: {name}_id is {config.get(f'{name}_id')!r} but the tokenizer's "
                                 f"is {got}")
    if config.get("fim_tokens") is not None and tok.fim_ids is not None:
        for name, got in zip(FIM_TOKENS, tok.fim_ids, strict=True):
            if config.get(f"{name}_id") != got:
                raise TokenizerError(f"{path}: {name}_id is {config.get(f'{name}_id')!r} but "
                                     f"{HF_TOKENIZER_FILE} has {FIM_TOKENS[name]} at id {got}")
