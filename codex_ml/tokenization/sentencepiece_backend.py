"""The `sentencepiece` backend: a SentencePiece BPE (or unigram) model trained with code-safe settings,
and its exact conversion to a `tokenizers` tokenizer for `transformers.AutoTokenizer`.

SentencePiece's defaults destroy code (NFKC normalisation, collapsed whitespace, a dummy space before
every text), so training uses identity normalisation, keeps every space, allows whitespace-only
pieces (indentation becomes one token), falls back to bytes for any character outside the
vocabulary, makes "\\n" a piece of its own, splits digits, and covers every character of the corpus.
The training sentences are source lines, so `max_sentence_length` is the longest line learned from.

Two details make encoding lossless and exactly reproducible by `tokenizers`:

- SentencePiece writes a space as U+2581 ("▁") and so cannot tell a literal U+2581 in the text from a
  space. This backend encodes a literal U+2581 as its three UTF-8 byte pieces, and the converted
  `tokenizers` vocabulary spells spaces as real spaces, so U+2581 is just an unknown character there
  and falls back to the same three bytes.
- transformers' stock `LlamaTokenizer` assumes Llama's normalisation and gives different ids. The
  conversion here builds the same model directly: the vocabulary with SentencePiece's ids, BPE merges
  ordered by SentencePiece's piece scores (`transformers`' `generate_merges`), byte fallback, "\\n"
  as an added token and the control pieces unreachable from text.

For `model_type: unigram` the packed ids come from the converted `tokenizers` Unigram model: it runs
the same Viterbi search in float64, while SentencePiece's own float32 search drifts on long documents
(measured: lower-scoring segmentations than the best one in 157 of 1,739 stdlib files, unigram-8192),
which would make AutoTokenizer and the token files disagree.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import sentencepiece as spm
from tokenizers import AddedToken, Tokenizer, decoders
from tokenizers.models import BPE, Unigram

from codex_ml.params import TokenizerParams
from codex_ml.tokenization.codex_tokenizer import FIM_TOKENS, SPECIAL_TOKENS, CodexTokenizer, TokenizerError

MODEL_FILE = "sentencepiece.model"
SPACE_SYMBOL = "\u2581"  # how SentencePiece writes " " inside pieces
NEWLINE = "\n"
# SentencePiece's trainers shard work by thread and the unigram trainer's result depends on the
# shard count (measured: 1 vs 2 threads give different vocabularies); the count is also written
# into the model file. A fixed count makes the model the same on every machine.
TRAIN_THREADS = 8
# Scores for pieces that must never be chosen for text in the converted unigram model (control
# pieces and <0xNN> bytes, which SentencePiece keeps out of its search; bytes still serve as fallback).
_UNREACHABLE_SCORE = -1e9


def train_sentencepiece(texts: Sequence[str], params: TokenizerParams) -> SentencePieceTokenizer:
    def sentences() -> Iterator[str]:
        for text in texts:  # prepared order: deterministic
            for line in text.split(NEWLINE):
                # SentencePiece would read a literal U+2581 as a space; it is encoded as bytes anyway.
                for part in line.split(SPACE_SYMBOL):
                    if part:
                        yield part

    model = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=sentences(), model_writer=model,
            model_type=params.model_type, vocab_size=params.vocab_size,
            normalization_rule_name="identity", remove_extra_whitespaces=False, add_dummy_prefix=False,
            allow_whitespace_only_pieces=True, split_digits=True, byte_fallback=True,
            character_coverage=1.0, user_defined_symbols=[NEWLINE],
            # control pieces: ids 4-6 after the four above, never produced from text
            control_symbols=list(FIM_TOKENS.values()),
            max_sentence_length=params.max_sentence_length,
            input_sentence_size=0,  # learn from every line: sampling would need a seed and a shuffle
            unk_id=0, bos_id=1, eos_id=2, pad_id=3,
            unk_piece=SPECIAL_TOKENS["unk"], bos_piece=SPECIAL_TOKENS["bos"],
            eos_piece=SPECIAL_TOKENS["eos"], pad_piece=SPECIAL_TOKENS["pad"],
            num_threads=TRAIN_THREADS, minloglevel=2,
        )
    except RuntimeError as exc:  # SentencePiece reports settings that do not fit the data this way
        raise TokenizerError(_training_error(str(exc), params)) from None
    return SentencePieceTokenizer(model.getvalue(), params.model_type)


def _training_error(message: str, params: TokenizerParams) -> str:
    """SentencePiece's failed check, as one line naming the param to change."""
    # "INTERNAL: src/trainer_interface.cc(638) [<the C++ condition>] <the explanation>"
    message = re.sub(r"^.*?\.cc\(\d+\) \[.*?\] ", "", " ".join(message.split()))
    if m := re.search(r"smaller than required_chars\. \d+ vs (\d+)", message):
        return (f"tokenizer.vocab_size: {params.vocab_size} is too small for this corpus: its distinct "
                f"characters, 256 byte tokens, 7 special tokens (4 and the 3 FIM sentinels) and the newline "
                f"piece need at least {m.group(1)}")
    if m := re.search(r"too high \(\d+\)\. Please set it to a value <= (\d+)", message):
        return (f"tokenizer.vocab_size: {params.vocab_size} is more than SentencePiece {params.model_type} "
                f"can learn from this corpus (at most {m.group(1)})")
    return f"tokenizer: SentencePiece cannot train on this corpus with these params: {message}"


class SentencePieceTokenizer(CodexTokenizer):
    backend: ClassVar[str] = "sentencepiece"

    def __init__(self, model_proto: bytes, model_type: Literal["bpe", "unigram"],
                 hf: Tokenizer | None = None) -> None:
        self.model_proto = model_proto
        self.model_type = model_type
        self.sp = spm.SentencePieceProcessor(model_proto=model_proto)
        super().__init__(hf if hf is not None else to_tokenizers(self.sp, model_type))
        self._space_symbol_ids = [self.sp.piece_to_id(f"<0x{b:02X}>") for b in SPACE_SYMBOL.encode()]

    @classmethod
    def load(cls, folder: Path, config: dict[str, Any], hf: Tokenizer) -> SentencePieceTokenizer:
        path = folder / MODEL_FILE
        model_type = config.get("model_type")
        if model_type not in ("bpe", "unigram"):
            raise TokenizerError(f"{folder / 'codex_tokenizer.json'}: model_type: expected bpe or "
                                 f"unigram, got {model_type!r}")
        try:
            tok = cls(path.read_bytes(), model_type, hf)
        except FileNotFoundError:
            raise TokenizerError(f"{folder}: incomplete tokenizer folder ({MODEL_FILE} is missing)") from None
        except RuntimeError as exc:  # SentencePiece's parse error
            raise TokenizerError(f"{path}: not a valid SentencePiece model ({exc})") from None
        if tok.sp.get_piece_size() != tok.vocab_size:  # files from two different trainings
            raise TokenizerError(f"{folder}: {MODEL_FILE} has {tok.sp.get_piece_size()} pieces but "
                                 f"tokenizer.json has {tok.vocab_size} tokens")
        return tok

    def config(self) -> dict[str, Any]:
        return {"model_type": self.model_type, "model_file": MODEL_FILE,
                "encoder": "sentencepiece" if self.model_type == "bpe" else "tokenizers"}

    def _save_backend_files(self, folder: Path) -> None:
        (folder / MODEL_FILE).write_bytes(self.model_proto)

    def encode_batch(self, texts: Sequence[str], threads: int) -> list[list[int]]:
        if self.model_type == "unigram":
            return [e.ids for e in self.hf.encode_batch_fast(list(texts), add_special_tokens=False)]
        # Literal U+2581 becomes its byte pieces: split there, encode the parts, splice the bytes in.
        segments: list[str] = []
        counts: list[int] = []
        for text in texts:
            parts = text.split(SPACE_SYMBOL)
            segments.extend(parts)
            counts.append(len(parts))
        # Longest first: SentencePiece's threads take texts in order, so a long file last would
        # leave the other threads idle while it finishes.
        order = sorted(range(len(segments)), key=lambda i: len(segments[i]), reverse=True)
        encoded = self.sp.encode([segments[i] for i in order], add_bos=False, add_eos=False,
                                 num_threads=threads)
        by_segment: list[list[int]] = [[] for _ in segments]
        for i, ids in zip(order, encoded, strict=True):
            by_segment[i] = ids
        out: list[list[int]] = []
        start = 0
        for n in counts:
            if n == 1:
                out.append(by_segment[start])
            else:
                ids = list(by_segment[start])
                for k in range(start + 1, start + n):
                    ids.extend(self._space_symbol_ids)
                    ids.extend(by_segment[k])
                out.append(ids)
            start += n
        return out

    def decode(self, ids: Sequence[int]) -> str:
        if self.model_type == "unigram":
            return str(self.hf.decode(list(ids), skip_special_tokens=True))
        return str(self.sp.decode(list(ids)))

    def byte_fallback_table(self) -> np.ndarray:
        return np.array([self.sp.is_byte(i) for i in range(self.vocab_size)], dtype=bool)


def to_tokenizers(sp: spm.SentencePieceProcessor, model_type: str) -> Tokenizer:
    """A `tokenizers` Tokenizer that encodes exactly as this code-safe SentencePiece model."""
    from transformers.tokenization_utils_base import generate_merges  # heavy import: training only

    n = sp.get_piece_size()
    pieces = [sp.id_to_piece(i) for i in range(n)]
    # Pieces SentencePiece never produces by merging or by search: specials, bytes, "\n".
    fixed = {i for i in range(n) if sp.is_control(i) or sp.is_unknown(i) or sp.is_byte(i)
             or pieces[i] == NEWLINE}
    # Spaces as real spaces: the tokenizer then works on raw text (no normaliser) and a literal
    # U+2581 is an ordinary unknown character that falls back to bytes, exactly as encode_batch does.
    names = [p if i in fixed else p.replace(SPACE_SYMBOL, " ") for i, p in enumerate(pieces)]
    if len(set(names)) != n:
        raise TokenizerError("SentencePiece model has pieces that differ only in ' ' vs U+2581")
    model: BPE | Unigram
    if model_type == "bpe":
        vocab = {name: i for i, name in enumerate(names)}
        # BPE pieces are numbered in merge order (score = -id), so merges ranked by the merged
        # piece's id reproduce SentencePiece's "highest-scoring pair first".
        merges = generate_merges(vocab, skip_tokens={names[i] for i in fixed})
        model = BPE(vocab=vocab, merges=merges, unk_token=SPECIAL_TOKENS["unk"], byte_fallback=True)
    else:
        scores = [(name, _UNREACHABLE_SCORE if i in fixed else float(sp.get_score(i)))
                  for i, name in enumerate(names)]
        model = Unigram(scores, unk_id=sp.unk_id(), byte_fallback=True)
    tok = Tokenizer(model)
    tok.decoder = decoders.Sequence([decoders.ByteFallback(), decoders.Fuse()])
    tok.add_special_tokens([AddedToken(pieces[i], normalized=False, special=True)
                            for i in range(n) if sp.is_control(i) or sp.is_unknown(i)])
    # SentencePiece matches user-defined symbols before anything else; an added token does the same.
    tok.add_tokens([AddedToken(NEWLINE, normalized=False, special=False)])
    return tok
