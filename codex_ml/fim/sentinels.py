"""FIM sentinel tokens: the spelling the trained backends use, the spellings of pretrained code models,
and one resolver that finds a tokenizer's sentinel ids or says which tokens it lacks.

The trained backends (hf-bpe, sentencepiece) spell the sentinels as StarCoder does and give them the
fixed ids 4, 5, 6, right after unk, bos, eos and pad (0-3), whatever the vocabulary size. Their pad
(`<pad>`) pads a FIM example that came out shorter than its window, so no `<fim_pad>` is needed.
A pretrained base keeps its own: StarCoder's `<fim_prefix>`, Qwen2.5-Coder's `<|fim_prefix|>`,
DeepSeek-Coder's `<｜fim▁begin｜>`, Code Llama's `▁<PRE>` (spellings from each model's tokenizer files).

A family may end the middle with a token of its own (Code Llama's `▁<EOT>`, CodeGemma's
`<|file_separator|>`); the others end it with EOS, as the packed streams end every document.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from codex_ml.runtime import StageError


class FimError(StageError):
    """FIM asked of a tokenizer or data that cannot do it; one line naming what is missing."""


@dataclass(frozen=True)
class Spelling:
    """How one family of models spells its sentinels, in PSM order of use."""

    models: str  # who uses it, for messages and docs
    prefix: str
    middle: str
    suffix: str
    end: str | None = None  # the family's own end-of-middle token (looked up only if present)

    def tokens(self) -> tuple[str, str, str]:
        return self.prefix, self.middle, self.suffix


TRAINED = Spelling("codex-ml's trained tokenizers, StarCoder, StarCoder2, StableCode",
                   "<fim_prefix>", "<fim_middle>", "<fim_suffix>")
# Ids of TRAINED's tokens in a tokenizer the hf-bpe or sentencepiece backend trained.
TRAINED_IDS = {"prefix": 4, "middle": 5, "suffix": 6}

SPELLINGS: tuple[Spelling, ...] = (
    TRAINED,
    Spelling("SantaCoder", "<fim-prefix>", "<fim-middle>", "<fim-suffix>"),
    Spelling("Qwen2.5-Coder, CodeQwen1.5, CodeGemma", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>",
             end="<|file_separator|>"),
    # DeepSeek-Coder: <begin> prefix <hole> suffix <end> middle
    Spelling("DeepSeek-Coder", "<｜fim▁begin｜>", "<｜fim▁end｜>", "<｜fim▁hole｜>"),
    Spelling("Code Llama", "▁<PRE>", "▁<MID>", "▁<SUF>", end="▁<EOT>"),
)


@dataclass(frozen=True)
class Sentinels:
    """A tokenizer's sentinel ids. `end` is None where the middle ends with EOS."""

    prefix: int
    middle: int
    suffix: int
    end: int | None
    spelling: Spelling

    def ids(self) -> tuple[int, int, int]:
        return self.prefix, self.middle, self.suffix


def vocab_of(tokenizer: Any) -> Mapping[str, int]:
    """token -> id of a `tokenizers.Tokenizer`, a transformers tokenizer or a mapping, added tokens in."""
    if isinstance(tokenizer, Mapping):
        return tokenizer
    try:
        return dict(tokenizer.get_vocab(with_added_tokens=True))  # tokenizers.Tokenizer
    except TypeError:
        return dict(tokenizer.get_vocab())  # transformers: added tokens are always in


def find_sentinels(tokenizer: Any) -> Sentinels | None:
    """The first spelling of SPELLINGS whose three tokens are all in the vocabulary, or None."""
    vocab = vocab_of(tokenizer)
    for s in SPELLINGS:
        if all(t in vocab for t in s.tokens()):
            end = vocab.get(s.end) if s.end is not None else None
            return Sentinels(int(vocab[s.prefix]), int(vocab[s.middle]), int(vocab[s.suffix]),
                             None if end is None else int(end), s)
    return None


def missing_sentinels(tokenizer: Any) -> tuple[Spelling, list[str]]:
    """The spelling the vocabulary comes closest to (most tokens present; TRAINED on a tie) and the
    tokens of it that are missing (empty when the tokenizer has them all)."""
    vocab = vocab_of(tokenizer)
    best = max(SPELLINGS, key=lambda s: sum(t in vocab for t in s.tokens()))
    return best, [t for t in best.tokens() if t not in vocab]


NO_FIM_HINT = "set train.fim.rate: 0, or use a base whose tokenizer has them"


def require_sentinels(tokenizer: Any, owner: str, hint: str = NO_FIM_HINT) -> Sentinels:
    """The tokenizer's sentinels, or one FimError naming `owner` (e.g. "model.pretrained
    base-models/gpt2"), what is missing and `hint` (what to do instead)."""
    found = find_sentinels(tokenizer)
    if found is not None:
        return found
    closest, absent = missing_sentinels(tokenizer)
    if len(absent) < 3:
        what = (f"it has part of {closest.models}'s set but not {', '.join(absent)}")
    else:
        what = "none of " + "; ".join(f"{' '.join(s.tokens())} ({s.models})" for s in SPELLINGS)
    raise FimError(f"{owner}: its tokenizer has no fill-in-the-middle sentinel tokens ({what}): {hint}")
