"""Typed, validated params for every stage: the one source of truth for defaults.

`params.yaml` has one section per stage. `load_params()` parses the whole file, rejects unknown keys,
wrong types and out-of-range values with one `ParamsError` that names the key and what was expected,
and returns frozen dataclasses. Stages call it before doing any work, so bad params write nothing.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import yaml


class ParamsError(ValueError):
    """A params file or value that does not match the schema. The message names file and key."""


# --------------------------------------------------------------------------------------------
# The schema. Every key a stage reads is here, with its default.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DataParams:
    source: Literal["stdlib", "dir", "jsonl"] = "stdlib"
    path: str | None = None  # folder (dir) or file (jsonl); ignored for stdlib
    include: list[str] = field(default_factory=lambda: ["**/*.py"])  # globs, for stdlib and dir
    text_field: str = "text"  # for jsonl
    max_file_bytes: int = 1_000_000
    val_fraction: float = 0.02
    test_fraction: float = 0.02
    redact_secrets: bool = True
    drop_generated: bool = True  # reject files whose first 5 lines say they were generated
    respect_gitignore: bool = True  # dir: skip what the corpus's own .gitignore files ignore

    def check(self) -> None:
        if self.source in ("dir", "jsonl") and not self.path:
            raise ParamsError(f"data.path: required when data.source is {self.source!r} "
                              f"(a {'folder' if self.source == 'dir' else 'JSONL file'}), got null")
        if not self.include:
            raise ParamsError("data.include: expected at least one glob, got an empty list")
        _require(self.max_file_bytes > 0, "data.max_file_bytes", "an integer > 0", self.max_file_bytes)
        for name in ("val_fraction", "test_fraction"):
            value = getattr(self, name)
            _require(0.0 <= value < 1.0, f"data.{name}", "a number in [0, 1)", value)
        total = self.val_fraction + self.test_fraction
        _require(total < 1.0, "data.val_fraction + data.test_fraction",
                 "a sum < 1 (something must be left for train)", total)


@dataclass(frozen=True)
class TokenizerParams:
    backend: Literal["sentencepiece", "hf-bpe"] = "sentencepiece"
    vocab_size: int = 8192  # including the 4 special tokens and the 256 byte tokens
    model_type: Literal["bpe", "unigram"] = "bpe"  # sentencepiece only (hf-bpe is always bpe)
    max_sentence_length: int = 16384  # sentencepiece: longest training "sentence" (a line), bytes
    threads: int = 0  # encoding threads; 0 = all cores (training files never depend on it)

    def check(self) -> None:
        # The floor is what every model holds before learning anything: 4 specials + 256 bytes
        # (+ the newline piece for sentencepiece). ids must fit the uint32 token files.
        floor = 262 if self.backend == "sentencepiece" else 261
        _require(floor <= self.vocab_size <= 2**32, "tokenizer.vocab_size",
                 f"an integer in [{floor}, 4294967296] for backend {self.backend}", self.vocab_size)
        if self.backend != "sentencepiece" and self.model_type != "bpe":
            raise ParamsError(f"tokenizer.model_type: {self.model_type!r} applies to backend "
                              f"sentencepiece only; backend {self.backend} is always 'bpe'")
        _require(10 <= self.max_sentence_length <= 2**30, "tokenizer.max_sentence_length",
                 "an integer in [10, 1073741824] (SentencePiece's limits)", self.max_sentence_length)
        _require(self.threads >= 0, "tokenizer.threads", "an integer >= 0 (0 = all cores)", self.threads)


@dataclass(frozen=True)
class LoraParams:
    enabled: bool = False
    r: int = 8
    alpha: float = 16.0
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])

    def check(self) -> None:
        _require(self.r > 0, "model.lora.r", "an integer > 0", self.r)
        _require(self.alpha > 0, "model.lora.alpha", "a number > 0", self.alpha)
        _require(0.0 <= self.dropout < 1.0, "model.lora.dropout", "a number in [0, 1)", self.dropout)
        if self.enabled and not self.target_modules:
            raise ParamsError("model.lora.target_modules: expected at least one module name, got []")


@dataclass(frozen=True)
class ModelParams:
    name: str = "llama-mini"  # a registry name (codex_ml.models.registry)
    pretrained: str | None = None  # a local Hugging Face model folder; overrides name
    lora: LoraParams = field(default_factory=LoraParams)

    def check(self) -> None:
        if not self.name and not self.pretrained:
            raise ParamsError("model.name: expected a registry name (or set model.pretrained)")
        self.lora.check()


@dataclass(frozen=True)
class TrainParams:
    seed: int = 1337
    seq_len: int = 128
    batch_size: int = 16
    grad_accum: int = 1
    optimizer: Literal["adamw", "muon"] = "muon"  # muon: Muon on hidden matrices, AdamW on the rest
    lr: float = 0.032  # AdamW's lr (every parameter with adamw; embeddings, norms with muon)
    muon_lr: float = 0.02  # Muon's lr for the hidden weight matrices (train.optimizer=muon)
    min_lr_ratio: float = 0.1  # cosine decays to lr * min_lr_ratio
    warmup_steps: int = 100
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0  # 0 disables clipping
    max_steps: int = 1200  # about 6.5 minutes of llama-mini on 2 CPU cores
    eval_every: int = 100
    eval_batches: int = 8  # val batches per periodic val loss
    checkpoint_every: int = 100
    keep_best: int = 2
    compile: bool = False
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"  # auto: bf16 on CUDA that supports it
    threads: int = 0  # torch intra-op threads; 0 = all cores

    def check(self) -> None:
        for name in ("seq_len", "batch_size", "grad_accum", "max_steps", "eval_every",
                     "eval_batches", "checkpoint_every"):
            _require(getattr(self, name) > 0, f"train.{name}", "an integer > 0", getattr(self, name))
        _require(self.lr > 0, "train.lr", "a number > 0", self.lr)
        _require(self.muon_lr > 0, "train.muon_lr", "a number > 0", self.muon_lr)
        _require(0.0 <= self.min_lr_ratio <= 1.0, "train.min_lr_ratio", "a number in [0, 1]",
                 self.min_lr_ratio)
        _require(0 <= self.warmup_steps < self.max_steps, "train.warmup_steps",
                 f"an integer in [0, train.max_steps={self.max_steps})", self.warmup_steps)
        _require(self.weight_decay >= 0, "train.weight_decay", "a number >= 0", self.weight_decay)
        for name in ("beta1", "beta2"):
            _require(0.0 <= getattr(self, name) < 1.0, f"train.{name}", "a number in [0, 1)",
                     getattr(self, name))
        _require(self.grad_clip >= 0, "train.grad_clip", "a number >= 0 (0 disables)", self.grad_clip)
        _require(self.keep_best >= 1, "train.keep_best", "an integer >= 1", self.keep_best)
        _require(self.threads >= 0, "train.threads", "an integer >= 0 (0 = all cores)", self.threads)


@dataclass(frozen=True)
class EvalParams:
    bootstrap: int = 1000  # bootstrap resamples over documents for each interval; 0 = no intervals
    completion_samples: int = 200  # lines sampled per split (val, test) for line completion
    completion_max_tokens: int = 64  # greedy tokens generated per completion at most
    batch_size: int = 16  # windows (and completions) per forward pass
    window: int = 0  # tokens per sliding window; 0 = train.seq_len (capped by the model's positions)
    stride: int = 0  # sliding-window step in tokens; 0 = window // 2
    seed: int = 1337
    threads: int = 0  # torch intra-op threads; 0 = torch's default (all cores)

    def check(self) -> None:
        _require(self.bootstrap >= 0, "eval.bootstrap", "an integer >= 0", self.bootstrap)
        _require(self.completion_samples >= 0, "eval.completion_samples", "an integer >= 0",
                 self.completion_samples)
        _require(self.completion_max_tokens > 0, "eval.completion_max_tokens", "an integer > 0",
                 self.completion_max_tokens)
        _require(self.batch_size > 0, "eval.batch_size", "an integer > 0", self.batch_size)
        _require(self.window == 0 or self.window >= 2, "eval.window",
                 "0 (train.seq_len) or an integer >= 2", self.window)
        _require(self.stride >= 0, "eval.stride", "an integer >= 0 (0 = window // 2)", self.stride)
        if self.window and self.stride:
            _require(self.stride < self.window, "eval.stride", f"< eval.window ({self.window})", self.stride)
        if self.window and self.completion_samples:
            _require(self.completion_max_tokens < self.window, "eval.completion_max_tokens",
                     f"< eval.window ({self.window})", self.completion_max_tokens)
        _require(self.threads >= 0, "eval.threads", "an integer >= 0 (0 = all cores)", self.threads)


@dataclass(frozen=True)
class ReportParams:
    baseline_rev: str | None = None  # a git revision to diff metrics against; null = no diff
    completion_examples: int = 3  # line completions shown in the report (matches first)

    def check(self) -> None:
        if self.baseline_rev is not None:
            _require(bool(self.baseline_rev.strip()), "report.baseline_rev",
                     "a git revision (commit, tag, branch) or null", self.baseline_rev)
        _require(self.completion_examples >= 0, "report.completion_examples", "an integer >= 0",
                 self.completion_examples)


@dataclass(frozen=True)
class Params:
    data: DataParams = field(default_factory=DataParams)
    tokenizer: TokenizerParams = field(default_factory=TokenizerParams)
    model: ModelParams = field(default_factory=ModelParams)
    train: TrainParams = field(default_factory=TrainParams)
    eval: EvalParams = field(default_factory=EvalParams)
    report: ReportParams = field(default_factory=ReportParams)

    def check(self) -> None:
        for f in dataclasses.fields(self):
            getattr(self, f.name).check()
        if self.train.eval_every > self.train.max_steps:
            raise ParamsError(f"train.eval_every: expected <= train.max_steps ({self.train.max_steps}), "
                              f"got {self.train.eval_every}")


# --------------------------------------------------------------------------------------------
# Loading: YAML -> dataclasses, with one clear error for anything that does not fit.
# --------------------------------------------------------------------------------------------

T = TypeVar("T")


def _require(ok: bool, key: str, expected: str, got: object) -> None:
    if not ok:
        raise ParamsError(f"{key}: expected {expected}, got {got!r}")


def _convert(value: Any, tp: Any, key: str) -> Any:
    """Check `value` against the annotation `tp` and return it converted (ints accepted as floats)."""
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        options = get_args(tp)
        if value is None:
            if type(None) in options:
                return None
            raise ParamsError(f"{key}: expected {_describe(tp)}, got null")
        for option in options:
            if option is type(None):
                continue
            try:
                return _convert(value, option, key)
            except ParamsError:
                pass
        raise ParamsError(f"{key}: expected {_describe(tp)}, got {value!r}")
    if origin is Literal:
        choices = get_args(tp)
        if value not in choices:
            raise ParamsError(f"{key}: expected one of {', '.join(map(str, choices))}, got {value!r}")
        return value
    if origin is list:
        (item_tp,) = get_args(tp)
        if not isinstance(value, list):
            raise ParamsError(f"{key}: expected {_describe(tp)}, got {value!r}")
        return [_convert(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value)]
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise ParamsError(f"{key}: expected a mapping of {tp.__name__} keys, got {value!r}")
        return _build(tp, value, key)
    if tp is bool:
        if not isinstance(value, bool):
            raise ParamsError(f"{key}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamsError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamsError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ParamsError(f"{key}: expected a string, got {value!r}")
        return value
    raise TypeError(f"unsupported annotation {tp!r} for {key}")  # a bug in this module, not in params


def _describe(tp: Any) -> str:
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(t) for t in get_args(tp))
    if origin is Literal:
        return "one of " + ", ".join(map(str, get_args(tp)))
    if origin is list:
        item = _describe(get_args(tp)[0]).removeprefix("an ").removeprefix("a ")
        return f"a list of {item}s"
    if tp is type(None):
        return "null"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(tp, str(tp))


def _build(cls: type[T], raw: dict[str, Any], prefix: str) -> T:
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for k in raw:
        if k not in known:
            where = f"{prefix}.{k}" if prefix else str(k)
            raise ParamsError(f"{where}: unknown key; expected one of {', '.join(sorted(known))}")
    values = {k: _convert(v, hints[k], f"{prefix}.{k}" if prefix else k) for k, v in raw.items()}
    return cls(**values)


def parse_params(raw: Any, source: str = "params") -> Params:
    """Validate a parsed params mapping; errors are prefixed with `source` (usually the file name)."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ParamsError(f"{source}: expected a mapping of sections, got {type(raw).__name__}")
    try:
        params = _build(Params, raw, "")
        params.check()
    except ParamsError as exc:
        raise ParamsError(f"{source}: {exc}") from None
    return params


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate a params file. Raises ParamsError naming the file and key on any problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ParamsError(f"{path}: params file not found") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}") from None
    return parse_params(raw, str(path))


def to_dict(obj: Any) -> dict[str, Any]:
    """Params (or one section) as plain data, e.g. for fingerprints and reports."""
    return dataclasses.asdict(obj)
