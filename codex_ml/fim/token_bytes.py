"""The bytes each token id stands for, so a run of packed ids turns back into its exact text.

FIM cuts at character positions, but the token files hold packed ids. A window's text is the
concatenation of its tokens' bytes: for a lossless tokenizer that is the document's UTF-8, byte for
byte, with no need for the prepared text or an offsets map. `tokenizers`' own `decode` cannot serve:
it replaces a character split across a window's edge with U+FFFD and merges per decoder rules.

The table is read from the tokenizer's decoder: byte-level BPE (GPT-2's byte-to-character map),
SentencePiece-style byte fallback (`<0xNN>` pieces), and `Replace`/`Metaspace` rules for the space
symbol. Special tokens stand for no bytes. A tokenizer that adds text of its own when encoding (a
dummy prefix space, a normaliser) does not spell its text back: `check_round_trip` finds that on real
documents before any FIM example is made.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from functools import cache
from typing import Any

import numpy as np
from tokenizers import Tokenizer

from codex_ml.fim.sentinels import FimError

_BYTE_PIECE = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")
_SUPPORTED = ("ByteLevel", "ByteFallback", "Fuse", "Replace", "Metaspace", "Strip")


@cache
def _unicode_to_byte() -> dict[str, int]:
    from transformers.convert_slow_tokenizer import bytes_to_unicode  # GPT-2's byte <-> character map

    return {c: b for b, c in bytes_to_unicode().items()}


def _decoder_steps(hf: Tokenizer) -> list[dict[str, Any]]:
    decoder = json.loads(hf.to_str()).get("decoder") or {}
    steps = decoder.get("decoders", []) if decoder.get("type") == "Sequence" else [decoder] if decoder else []
    unknown = sorted({s.get("type", "?") for s in steps} - set(_SUPPORTED))
    if unknown:
        raise FimError(f"the tokenizer's decoder ({', '.join(unknown)}) is not one whose tokens map to bytes "
                       f"(supported: {', '.join(_SUPPORTED)}): FIM cannot cut its text at characters")
    return steps


def _piece_bytes(piece: str, steps: list[dict[str, Any]]) -> bytes:
    for step in steps:
        kind = step["type"]
        if kind == "ByteLevel":
            table = _unicode_to_byte()
            if all(c in table for c in piece):
                return bytes(table[c] for c in piece)
        elif kind == "ByteFallback" and (m := _BYTE_PIECE.match(piece)):
            return bytes([int(m.group(1), 16)])
        elif kind == "Replace" and "String" in step.get("pattern", {}):
            piece = piece.replace(step["pattern"]["String"], step["content"])
        elif kind == "Metaspace":
            piece = piece.replace(step.get("replacement", "\u2581"), " ")
    return piece.encode("utf-8")


def encoder(hf: Tokenizer) -> Tokenizer:
    """A copy of `hf` that encodes special-token text in a document as text, as the packed streams do
    (the flag is runtime state of the Rust tokenizer, so the caller's own is left as it is)."""
    copy = Tokenizer.from_str(hf.to_str())
    copy.encode_special_tokens = True
    return copy


class TokenBytes:
    """`table[id]`: the bytes token `id` stands for (b"" for special tokens)."""

    def __init__(self, hf: Tokenizer) -> None:
        steps = _decoder_steps(hf)
        size = hf.get_vocab_size(with_added_tokens=True)
        table: list[bytes] = [b""] * size
        for token, i in hf.get_vocab(with_added_tokens=False).items():
            table[i] = _piece_bytes(token, steps)
        for i, added in hf.get_added_tokens_decoder().items():
            if i < size:
                table[i] = b"" if added.special else added.content.encode("utf-8")
        self.table = table

    def join(self, ids: Iterable[int]) -> bytes:
        table = self.table
        return b"".join(table[i] for i in ids)

    def text(self, ids: Sequence[int] | np.ndarray) -> str | None:
        """The text of `ids`, or None when their bytes are not whole UTF-8 characters (a window that
        starts or ends inside a character the vocabulary spells as several byte tokens)."""
        try:
            return self.join(np.asarray(ids).tolist()).decode("utf-8")
        except UnicodeDecodeError:
            return None


def check_round_trip(hf: Tokenizer, table: TokenBytes, texts: Iterable[str], owner: str) -> None:
    """Every text must come back byte for byte from its ids through the table; one FimError naming
    `owner` (the tokenizer's folder or model.pretrained) otherwise."""
    hf = encoder(hf)
    for n, text in enumerate(texts):
        ids = hf.encode(text, add_special_tokens=False).ids
        if table.join(ids) != text.encode("utf-8"):
            raise FimError(f"{owner}: its tokenizer does not spell text back byte for byte (document {n} "
                           f"of the sample changes on encode: a normaliser or an added prefix space), so FIM "
                           f"cannot cut its documents at characters")
