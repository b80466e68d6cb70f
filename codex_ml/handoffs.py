"""The files one stage hands to another that code reads, as typed models: `data/tokens/meta.json`
(tokenize -> train and eval) and `codex_model.json` in a fine-tuned model folder (train -> eval), with
the record of a pretrained base model that both carry; and what of metrics/eval.json eval and the
report share: one constant, and how a span kind's infilling numbers read in one line.

Each file is written and read through its model here, so its writer and its readers cannot disagree on
a key, and a file that does not fit (made by another version of the project, or not by the stage) is
one StageError naming the file, what was expected and how to make it again. What only the disk can
tell (a shard's size against its token count) is checked where the shards are opened (shards.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from codex_ml.io import write_json
from codex_ml.paths import SPLITS
from codex_ml.runtime import StageError

META_FILE = "meta.json"  # in the token folder (data/tokens)
MODEL_RECORD = "codex_model.json"  # in a model folder fine-tuned from a pretrained base

# eval.json's `bits_per_byte_ci_too_wide`: a split's bits/byte interval whose upper end is more than
# WIDE_RATIO times its lower end. Such a split's number says more about which files fell into it (few
# of them, or one unlike the rest, such as a data table) than about the model, so eval and the report
# flag it instead of letting it rank anything (docs/sources.md, "Intervals too wide to rank models").
WIDE_RATIO = 1.5


def too_wide(ci: list[float] | tuple[float, float] | None) -> bool:
    """Whether a bits/byte interval is too wide to rank models (WIDE_RATIO); False without one."""
    return ci is not None and ci[0] > 0 and ci[1] > WIDE_RATIO * ci[0]


def infill_text(m: dict[str, Any]) -> str:
    """One span kind's `infill` numbers of metrics/eval.json in words (eval's summary, the report's)."""
    if m.get("middle_bpb_l2r") is None:
        return "no span's middle fits half the window"
    text = ""
    if m.get("exact_match") is not None:
        text += f"exact match {m['exact_match']:.3f}, edit similarity {m['edit_similarity']:.3f}; "
    text += f"middle bits/byte {m['middle_bpb_l2r']:.3f} left to right"
    if m.get("middle_bpb_fim") is not None:
        ci = m.get("suffix_gain_bpb_ci")
        text += (f", {m['middle_bpb_fim']:.3f} with the suffix (it saves {m['suffix_gain_bpb']:.3f}"
                 + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "") + ")")
    return text


Count = Annotated[int, Field(ge=0)]
TokenDtype = Literal["uint16", "uint32"]


class Handoff(BaseModel):
    """A strict, frozen file model: every key its writer writes, nothing else, of the right type."""

    model_config = ConfigDict(strict=True, frozen=True, extra="forbid")

    @classmethod
    def read(cls, path: Path, remedy: str) -> Self:
        """The file at `path` as this model; one StageError when it is missing or does not fit."""
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise StageError(f"{path}: not found ({remedy})") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise StageError(f"{path}: cannot read it ({exc})") from None
        try:
            return cls.model_validate_json(text)
        except ValidationError as exc:
            raise StageError(f"{path}: not the {path.name} this version of codex-ml writes "
                             f"({problems(exc)}): {remedy}") from None

    def write(self, path: Path) -> None:
        """Atomically, as sorted JSON; a key whose value is None and that the model may omit is omitted."""
        omitted = {key for key in self.omitted_when_none() if getattr(self, key) is None}
        write_json(path, self.model_dump(mode="json", exclude=omitted))

    @classmethod
    def omitted_when_none(cls) -> set[str]:
        return set()


def token_dtype_name(vocab_size: int) -> TokenDtype:
    """The token files' dtype: uint16 while every id fits (up to 65,536 ids), else uint32."""
    return "uint16" if vocab_size <= 2**16 else "uint32"


def problems(exc: ValidationError, shown: int = 3) -> str:
    """pydantic's errors as `key: what is wrong`, the first few of them."""
    lines = []
    for err in exc.errors()[:shown]:
        key = ".".join(str(part) for part in err["loc"]) or "the file"
        msg = err["msg"].removeprefix("Value error, ")
        lines.append(f"{key}: {msg[:1].lower()}{msg[1:]}")
    more = len(exc.errors()) - shown
    return "; ".join(lines) + (f"; and {more} more" if more > 0 else "")


class BaseRecord(Handoff):
    """A pretrained base model as the files made from it record it (base_model.py makes it): its name and
    revision, and the hashes of its tokenizer files and of its whole folder."""

    pretrained: str
    revision: str | None
    tokenizer_sha256: str
    sha256: str


class ShardMeta(Handoff):
    file: str  # data/tokens/{split}-NNNNN.bin
    tokens: Count  # with one EOS per document
    documents: Count


class SplitMeta(Handoff):
    """One split of the token files: its totals, its shards in stream order, and its index file."""

    tokens: Count  # with one EOS per document
    bytes: Count  # UTF-8 bytes of its documents' text
    documents: Count
    shards: list[ShardMeta] = Field(min_length=1)
    index: str  # data/tokens/{split}.index.parquet

    @model_validator(mode="after")
    def _totals(self) -> Self:
        for key in ("tokens", "documents"):
            listed, total = sum(getattr(shard, key) for shard in self.shards), getattr(self, key)
            if listed != total:
                raise ValueError(f"its shards hold {listed} {key} in all, but '{key}' is {total}")
        return self


class TokenMeta(Handoff):
    """`data/tokens/meta.json`: how the token files are laid out and which tokenizer made their ids."""

    dtype: TokenDtype
    vocab_size: int = Field(gt=0)
    backend: str  # the tokenizer: hf-bpe, sentencepiece or pretrained
    pad_id: Count
    bos_id: Count | None  # a pretrained tokenizer may have no BOS or no unknown token
    eos_id: Count
    unk_id: Count | None
    splits: dict[str, SplitMeta]  # by split name (paths.SPLITS)
    base_model: BaseRecord | None = None  # the pretrained model whose own tokenizer made the ids

    @classmethod
    def omitted_when_none(cls) -> set[str]:
        return {"base_model"}

    @model_validator(mode="after")
    def _ids(self) -> Self:
        if unknown := sorted(set(self.splits) - set(SPLITS)):
            raise ValueError(f"'splits' has {', '.join(unknown)}; expected names of {', '.join(SPLITS)}")
        for key in ("pad_id", "bos_id", "eos_id", "unk_id"):
            value = getattr(self, key)
            if value is not None and value >= self.vocab_size:
                raise ValueError(f"{key} {value} is not below vocab_size {self.vocab_size}")
        return self

    @classmethod
    def load(cls, tokens_dir: Path) -> TokenMeta:
        return cls.read(tokens_dir / META_FILE, "run the tokenize stage: `dvc repro -f tokenize`")

    def save(self, tokens_dir: Path) -> None:
        self.write(tokens_dir / META_FILE)

    def split(self, name: str, tokens_dir: Path) -> SplitMeta:
        """One split's entry; StageError naming the file when it has none."""
        if name not in self.splits:
            raise StageError(f"{tokens_dir / META_FILE}: no split {name!r} under 'splits' (it has "
                             f"{', '.join(self.splits) or 'none'}): rerun the tokenize stage")
        return self.splits[name]


class ModelRecord(Handoff):
    """`codex_model.json` in a model folder tuned from a pretrained model: the base it came from, which
    eval scores as a baseline."""

    base_model: BaseRecord

    @classmethod
    def load(cls, model_dir: Path) -> ModelRecord | None:
        """The record of `model_dir`, or None for a model trained from scratch (no record)."""
        path = model_dir / MODEL_RECORD
        if not path.is_file():
            return None
        return cls.read(path, "write the model folder again: `dvc repro -f train`")

    def save(self, model_dir: Path) -> None:
        self.write(model_dir / MODEL_RECORD)
