"""eval's and report's params: eval.* (windows, intervals, completions, HumanEval) and report.*."""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import Field, field_validator, model_validator

from codex_ml.params.section import (
    AtLeast1,
    Cores,
    Count,
    Hint,
    ParamsError,
    Positive,
    PositiveNumber,
    Section,
    fail,
    raise_all,
    setting,
)


class HumanEvalParams(Section):
    key = "eval.humaneval"

    enabled: bool = setting(False, "the eval stage runs HumanEval too (codex eval --humaneval: always)")
    n: Annotated[int, Field(ge=0), Hint("0 = greedy only")] = setting(
        0, "sampled completions per problem for pass@k (k = 1, 10, 100 up to n)")
    temperature: PositiveNumber = setting(0.8, "of the samples (greedy pass@1 is always measured)")
    top_p: Annotated[float, Field(gt=0, le=1)] = setting(0.95, "nucleus sampling of the samples")
    max_new_tokens: AtLeast1 = setting(128, "tokens per completion (at most half the model's window)")
    timeout: PositiveNumber = setting(3.0, "wall-clock (and CPU) seconds per program in the sandbox")
    workers: Cores = setting(0, "programs run at once")
    limit: Annotated[int, Field(ge=0), Hint("0 = all 164")] = setting(0, "the first `limit` problems only")
    keep_messages: bool = setting(False, "each program's redacted error message (200 characters) in the "
                                         "git-tracked rows; false: in logs/eval/, git-ignored")


class InfillParams(Section):
    key = "eval.infill"

    line: Count = setting(100, "single lines masked per split (val, test): scored with and without the "
                               "suffix, and written (exact match, edit similarity)")
    block: Count = setting(50, "blocks of 2-8 lines masked per split: scored with and without the suffix")
    write_blocks: bool = setting(False, "write the blocks too (exact match, edit similarity of blocks)")
    window: Annotated[int, Field(ge=16)] = setting(
        256, "tokens of prefix, suffix and middle around each span (capped by the eval window)")
    max_new_tokens: AtLeast1 = setting(32, "tokens written per line of the masked middle")
    humaneval: bool = setting(False, "HumanEval single-line infilling (1,033 tasks run in the sandbox; "
                                     "eval.humaneval's timeout and workers)")


class EvalParams(Section):
    key = "eval"

    bootstrap: Count = setting(1000, "bootstrap resamples over documents per 95% interval; 0 = no intervals")
    completion_samples: Count = setting(200, "lines per split (val, test) completed greedily for exact match")
    completion_max_tokens: Annotated[int, Field(ge=0), Hint("0 = min(64, window // 2)")] = setting(
        0, "tokens per completion at most")
    batch_size: Positive = setting(16, "windows (and completions) per forward pass")
    window: int = setting(0, "tokens per sliding window; 0 = the model's context (train.final_seq_len, else "
                         "train.seq_len), capped by the model's positions")
    stride: Annotated[int, Field(ge=0), Hint("0 = window // 2")] = setting(0, "sliding-window step in tokens")
    seed: int = setting(1337, "seed of the bootstrap and of the sampled lines")
    threads: Cores = setting(0, "torch intra-op threads")
    kernels: Literal["avx2", "native"] = setting(
        "avx2", "CPU kernels of the scoring, as train.kernels: avx2, the same numbers on any Intel x86-64 "
                "CPU; native: each library's fastest for this CPU")
    leak_audit: bool = setting(True, "count val/test documents with a near-duplicate in train (Jaccard >= "
                                     "0.7): `leak` per split in metrics/eval.json")
    humaneval: HumanEvalParams = setting(HumanEvalParams, "functional correctness in the sandbox")
    infill: InfillParams = setting(InfillParams, "fill in the middle on held-out documents (docs/fim.md)")

    @field_validator("window")
    @classmethod
    def _window(cls, value: int) -> int:
        if value == 1 or value < 0:
            raise fail("eval.window", "0 (the model's context) or an integer >= 2", value)
        return value

    @model_validator(mode="after")
    def _relations(self) -> Self:
        if self.window:
            self.check_window(self.window, f"eval.window ({self.window})")
        return self

    # The settings that follow the window, in one place for eval and for the checks here.
    def window_for(self, context: int) -> int:
        """Tokens per window before the model's cap: eval.window, else the model's context (0: unknown)."""
        return self.window or context

    def stride_in(self, window: int) -> int:
        return self.stride or max(1, window // 2)

    def completion_tokens_in(self, window: int) -> int:
        """At most 64 new tokens, and never more than half the window: the prompt keeps the rest."""
        return self.completion_max_tokens or min(64, window // 2)

    def window_problems(self, window: int, what: str) -> list[ParamsError]:
        """Explicit stride and completion length against a window of `window` tokens (`what` says
        where that number comes from)."""
        problems = []
        if self.stride and self.stride >= window:
            problems.append(fail("eval.stride", f"< {what}", self.stride))
        if self.completion_samples and self.completion_max_tokens >= window:
            problems.append(fail("eval.completion_max_tokens", f"< {what}", self.completion_max_tokens))
        return problems

    def check_window(self, window: int, what: str) -> None:
        raise_all(self.window_problems(window, what))


class ReportParams(Section):
    key = "report"

    baseline_rev: str | None = setting(None, "a git revision (commit, tag, branch) to diff metrics against; "
                                         "null = no diff")
    completion_examples: Count = setting(3, "line completions shown in the report (matches first)")

    @field_validator("baseline_rev")
    @classmethod
    def _revision(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise fail("report.baseline_rev", "a git revision (commit, tag, branch) or null", value)
        return value


class ReleaseParams(Section):
    key = "release"

    license: str | None = setting(
        None, "the model card's license, an SPDX expression; null: the training documents' license when "
              "they share one, else `other` (docs/licenses.md)")

    @field_validator("license")
    @classmethod
    def _spdx(cls, value: str | None) -> str | None:
        """An SPDX expression of ids on the SPDX list (or LicenseRef-*), as license-expression renders it."""
        if value is None:
            return None
        from license_expression import ExpressionError, get_spdx_licensing

        licensing = get_spdx_licensing()
        expected = "an SPDX license expression (MIT, Apache-2.0 OR MIT, LicenseRef-...) or null"
        try:
            parsed = licensing.parse(value, strict=True)
        except ExpressionError:
            raise fail("release.license", expected, value) from None
        unknown = [k for k in licensing.unknown_license_keys(parsed) if not k.startswith("LicenseRef-")]
        if parsed is None or unknown:
            raise fail("release.license", expected, value)
        return str(parsed.render())
