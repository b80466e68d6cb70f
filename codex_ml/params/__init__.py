"""Typed, validated params for every stage: the one source of truth for defaults. docs/params.md is
generated from this schema (`make params-doc`), and a test holds conf/ to it.

`params.yaml` has one section per stage. `load_params()` parses the whole file into frozen pydantic
models (one module per stage's sections). Ranges are pydantic constraints on the keys' types; relations
between keys are model validators. Anything that does not fit is a `ParamsError` of one line per problem,
each naming the file, the key, what was expected and what was given: every problem of the file at
once, so a user fixes them in one go. Every stage loads the whole file before doing any
work, so bad params stop the first stage and write nothing.

Types are strict, as a YAML author means them: no "1" -> 1 or 1.5 -> 1, bools only true/false; an
integer is accepted where a number is expected.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Self

import yaml
from pydantic import BaseModel, ValidationError, model_validator

from codex_ml.params.data import (
    DataParams,
    HeldOutParams,
    NearDedupParams,
    QualityParams,
    RayParams,
    SlurmParams,
    TokenizerParams,
)
from codex_ml.params.eval import EvalParams, HumanEvalParams, InfillParams, ReleaseParams, ReportParams
from codex_ml.params.section import ParamsError, Section, error_lines, fail, raise_all, setting
from codex_ml.params.train import FimParams, LoraParams, ModelParams, TrainParams

__all__ = [
    "DataParams",
    "EvalParams",
    "FimParams",
    "HeldOutParams",
    "HumanEvalParams",
    "InfillParams",
    "LoraParams",
    "ModelParams",
    "NearDedupParams",
    "Params",
    "ParamsError",
    "QualityParams",
    "RayParams",
    "ReleaseParams",
    "ReportParams",
    "Section",
    "SlurmParams",
    "TokenizerParams",
    "TrainParams",
    "load_params",
    "parse_params",
    "to_dict",
]


class Params(Section):
    data: DataParams = setting(DataParams, "read by prepare; the executor keys by tokenize too")
    tokenizer: TokenizerParams = setting(TokenizerParams, "read by tokenize")
    model: ModelParams = setting(ModelParams, "read by train; pretrained and revision by tokenize too")
    train: TrainParams = setting(TrainParams, "read by train; the context by eval too")
    eval: EvalParams = setting(EvalParams, "read by eval")
    release: ReleaseParams = setting(ReleaseParams, "read by release")
    report: ReportParams = setting(ReportParams, "read by report")

    def eval_window(self) -> int:
        """Tokens per eval window for the pipeline's own model (its context: train.final_seq_len, or
        train.seq_len without one)."""
        return self.eval.window_for(self.train.context)

    @model_validator(mode="after")
    def _relations(self) -> Self:
        """What stages share: everything a later stage would refuse is refused here, at the first stage."""
        train, ev = self.train, self.eval
        problems: list[ParamsError] = []
        if self.tokenizer.backend == "pretrained" and not self.model.pretrained:
            problems.append(ParamsError("tokenizer.backend: pretrained needs model.pretrained (whose "
                                        "tokenizer it is), got model.pretrained: null"))
        if train.parallel == "fsdp" and self.model.lora.enabled:
            problems.append(ParamsError("train.parallel: fsdp does not train LoRA adapters here (they are "
                                        "small: use ddp), got model.lora.enabled: true"))
        context = "train.final_seq_len" if train.final_seq_len else "train.seq_len"
        if ev.window and not self.model.pretrained and ev.window > train.context:
            problems.append(fail("eval.window", f"0 or <= {context}={train.context} (a model from the "
                                 f"registry has {context} positions)", ev.window))
        if not ev.window:
            problems += ev.window_problems(self.eval_window(),
                                           f"the eval window (eval.window=0 -> {context}={train.context})")
        raise_all(problems)
        return self


def parse_params(raw: Any, source: str = "params") -> Params:
    """Validate a parsed params mapping; errors are prefixed with `source` (usually the file name)."""
    if not isinstance(raw, dict | None):
        raise ParamsError(f"{source}: expected a mapping of sections, got {type(raw).__name__}")
    try:
        return Params.model_validate(raw or {})
    except ValidationError as exc:
        raise ParamsError("\n".join(f"{source}: {line}" for line in error_lines(exc, Params))) from None


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate a params file. Raises ParamsError naming the file and key on any problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ParamsError(f"{path}: params file not found") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        raise ParamsError(_yaml_error(path, exc)) from None
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from None
    return parse_params(raw, str(path))


def _yaml_error(path: Path, exc: yaml.MarkedYAMLError) -> str:
    """`file:line:column: not valid YAML: problem (context at line:column)`, as editors read it."""

    def at(mark: Any) -> str:
        return f"{mark.line + 1}:{mark.column + 1}"

    what = exc.problem or exc.context or "unreadable"
    if exc.problem and exc.context and exc.context_mark:  # e.g. where the unclosed [ opened
        what += f" ({exc.context} at {at(exc.context_mark)})"
    mark = exc.problem_mark or exc.context_mark
    return f"{path}{':' + at(mark) if mark else ''}: not valid YAML: {what}"


def to_dict(obj: BaseModel) -> dict[str, Any]:
    """Params (or one section) as plain data, e.g. for fingerprints and reports."""
    return obj.model_dump()
