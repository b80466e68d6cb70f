"""What `codex eval` and `codex generate` take besides paths, in a module that does not import torch
(the `codex` command imports it to build its options): the devices, the held-out splits as a choice,
and the sampling settings with their one set of defaults."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from codex_ml.paths import HELD_OUT
from codex_ml.runtime import StageError

Device = Literal["auto", "cpu", "cuda"]  # auto: CUDA when torch sees a device, else the CPU
# `--split`'s choices: the held-out splits (an enum, as Typer takes a list of choices)
Split = StrEnum("Split", {name: name for name in HELD_OUT})  # type: ignore[misc]  # members: HELD_OUT


@dataclass(frozen=True)
class SamplingParams:
    max_new_tokens: int | None = None  # None: min(128, half the model's context window)
    temperature: float = 0.8  # 0 = greedy
    top_k: int = 50  # 0 = no top-k cut
    top_p: float = 0.95  # 1 = no nucleus cut
    seed: int = 1337

    def check(self) -> None:
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            raise StageError(f"--max-new-tokens: expected an integer >= 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise StageError(f"--temperature: expected a number >= 0, got {self.temperature}")
        if self.top_k < 0:
            raise StageError(f"--top-k: expected an integer >= 0, got {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise StageError(f"--top-p: expected a number in (0, 1], got {self.top_p}")
