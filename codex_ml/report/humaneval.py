"""The report's HumanEval section, from what the eval stage wrote: `humaneval` in metrics/eval.json and
the per-problem rows in metrics/eval/humaneval.ndjson (docs/humaneval.md says what they mean).

Shown: greedy pass@1 with its bootstrap interval over problems, sampled pass@k when samples were drawn,
the outcome of every problem by kind (passed, assertion, exception, syntax, timeout, killed), and a few
solved and failed problems with what the model wrote. When HumanEval did not run (it is off by default)
the section says so in a sentence; it never shows a number the eval stage did not write.

A module of its own: the largest section, and optional.
"""

from __future__ import annotations

from typing import Any

from codex_ml.report.document import Code, CodeBlock, Heading, Note, Para, Report, Table
from codex_ml.report.format import num, with_ci
from codex_ml.report.inputs import Paths, get, read_ndjson

EXAMPLES = 2  # solved problems shown, and as many failed ones
ROWS = "humaneval.ndjson"
# Each problem's pass (1) or fail (0) at <rev> beside the workspace (docs/humaneval.md).
PLOTS_DIFF = ("dvc plots diff <rev> --targets metrics/eval/humaneval.csv -x passed -y task_id "
              "--template bar_horizontal")


def humaneval_section(r: Report, paths: Paths, ev: Any) -> None:
    r.add(Heading(2, "HumanEval"))
    m = get(ev, "humaneval")
    if not isinstance(m, dict):
        r.add(Note("HumanEval did not run (eval.humaneval.enabled is false, the default): "
                   "`codex eval --humaneval --model models/model` scores any model folder."))
        return
    r.add(Para([f"Greedy pass@1: {with_ci(m.get('pass@1'), m.get('pass@1_ci'))} (95% bootstrap interval "
                f"over problems): {num(m.get('passed'))} of {num(m.get('problems'))} problems pass their "
                f"tests in the sandbox (completions of at most {num(m.get('max_new_tokens'))} tokens). "
                "Per problem across revisions: ", Code(PLOTS_DIFF), "."]))
    sampled = m.get("sampled")
    if isinstance(sampled, dict):
        ks = sorted(int(k.removeprefix("pass@")) for k in sampled
                    if k.startswith("pass@") and not k.endswith("_ci"))
        r.add(Para([f"Sampled: {num(sampled.get('n'))} completions per problem, pass@k by Chen et al.'s "
                    "unbiased estimator:"]))
        r.add(Table(["k", "pass@k [95% interval]"],
                    [[str(k), with_ci(sampled.get(f"pass@{k}"), sampled.get(f"pass@{k}_ci"))] for k in ks],
                    [True, True]))
    outcomes = m.get("outcomes")
    if isinstance(outcomes, dict):
        order = sorted(outcomes.items(), key=lambda kv: (kv[0] != "passed", -kv[1], kv[0]))  # passed first
        r.add(Table(["outcome (greedy)", "problems"], [[str(k), num(v)] for k, v in order], [False, True]))
    examples(r, paths)


def examples(r: Report, paths: Paths) -> None:
    path = paths.eval_dir / ROWS
    rows = read_ndjson(paths.at(path))
    if rows is None:
        r.add(Note(f"{path} not found: the per-problem completions are not available in this report."))
        return
    solved = [x for x in rows if x.get("passed")][:EXAMPLES]
    failed = [x for x in rows if not x.get("passed")][:EXAMPLES]
    if not solved:
        r.add(Para(["No problem was solved."]))
    for x in solved + failed:
        error = f" ({x['error_type']})" if x.get("error_type") else ""
        message = f": {x['message']}" if x.get("message") else ""  # with eval.humaneval.keep_messages
        r.add(Para([Code(str(x.get("task_id"))), f" — {x.get('kind')}{error}{message}"]))
        wrote = str(x.get("completion", ""))
        r.add(CodeBlock(wrote if wrote.strip() else "# (the model wrote nothing)"))
