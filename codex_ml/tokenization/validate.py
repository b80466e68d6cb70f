"""Checks of a trained tokenizer against real text: lossless round trip, and that
`transformers.AutoTokenizer` loaded from the saved folder gives exactly the backend's ids."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from codex_ml.tokenization.codex_tokenizer import CodexTokenizer, TokenizerError

# Text that has broken code tokenizers: tabs and CRLF, runs of spaces, digits, non-ASCII, emoji,
# control characters, SentencePiece's own space symbol, special-token text and byte-piece names.
PROBES = [
    "def f(x):\n\treturn x  # tab\r\n",
    "        if a == b:\n            pass\n\n\n",
    "x = 1234567890 + 0x1F + 3.14e-10\n",
    "naïve café — ünïcödé, 中文, русский, العربية 😀👍🏽\n",
    "\x00\x01\x0c\x1b[31m\x7f\u200b\ufeff",
    "a\u2581b \u2581\u2581 \u2581",
    "<s>text</s> <unk> <pad> <0x41> <|endoftext|>",
    " leading and trailing spaces   ",
    "",
]


@dataclass
class CheckResult:
    documents: int = 0
    round_trip_exact: int = 0
    autotokenizer_match: int = 0
    round_trip_failures: list[str] = field(default_factory=list)
    autotokenizer_failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.round_trip_failures and not self.autotokenizer_failures


def round_trip_failures(tok: CodexTokenizer, texts: Sequence[str], ids: Sequence[Sequence[int]],
                        names: Sequence[str]) -> list[str]:
    """Names of the texts whose ids do not decode back to exactly the text."""
    return [name for text, doc_ids, name in zip(texts, ids, names, strict=True)
            if tok.decode(doc_ids) != text]


def load_autotokenizer(folder: Path, tok: CodexTokenizer) -> Any:
    """transformers.AutoTokenizer on `folder`, checked to have the backend's special-token ids."""
    from transformers import AutoTokenizer  # heavy import, only for these checks

    auto = AutoTokenizer.from_pretrained(str(folder))
    for name, want in asdict(tok.special_ids).items():
        got = getattr(auto, f"{name}_token_id")
        if got != want:
            raise TokenizerError(f"{folder}: AutoTokenizer's {name}_token_id is {got}, "
                                 f"the backend's is {want}")
    return auto


def autotokenizer_failures(auto: Any, texts: Sequence[str], ids: Sequence[Sequence[int]],
                           names: Sequence[str], as_user_calls: bool = True) -> list[str]:
    """Names of the texts on which AutoTokenizer (called as a user calls it, defaults included) gives
    other ids than `ids`, or does not decode its ids back to the text. `as_user_calls=False` (a
    pretrained tokenizer, which may add a BOS and need not be lossless): the ids without special
    tokens only."""
    failures = []
    for text, doc_ids, name in zip(texts, ids, names, strict=True):
        if not as_user_calls:
            if list(auto.encode(text, add_special_tokens=False)) != list(doc_ids):
                failures.append(name)
            continue
        auto_ids = auto.encode(text)
        if list(auto_ids) != list(doc_ids) or auto.decode(auto_ids) != text:
            failures.append(name)
    return failures


def check_tokenizer(tok: CodexTokenizer, folder: Path, texts: Sequence[str], names: Sequence[str],
                    threads: int) -> CheckResult:
    ids = tok.encode_batch(texts, threads)
    rt = round_trip_failures(tok, texts, ids, names)
    auto = autotokenizer_failures(load_autotokenizer(folder, tok), texts, ids, names)
    return CheckResult(documents=len(texts), round_trip_exact=len(texts) - len(rt),
                       autotokenizer_match=len(texts) - len(auto), round_trip_failures=rt,
                       autotokenizer_failures=auto)
