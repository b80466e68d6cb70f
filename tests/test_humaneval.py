"""HumanEval: the real 164 problems' canonical solutions pass in the sandbox, wrong ones fail with the
right kind, pass@k is Chen et al.'s estimator, and `codex eval --humaneval` runs end to end."""

from __future__ import annotations

import json
from math import comb
from pathlib import Path

import pytest
from typer.testing import CliRunner

from codex_ml.cli import app
from codex_ml.eval.humaneval import (
    MESSAGE_CHARS,
    execute,
    load_problems,
    pass_at_k,
    recorded_message,
    recorded_type,
    score,
    truncate_at_stop,
)
from codex_ml.eval.sandbox import Limits
from codex_ml.params import EvalParams, ParamsError
from tests.evalkit import shared_workspace


def test_every_canonical_solution_passes_and_wrong_ones_fail_with_their_kind() -> None:
    problems = load_problems()
    assert len(problems) == 164 and problems[0].task_id == "HumanEval/0"
    runs = execute(problems, [[p.canonical_solution] for p in problems], Limits(timeout=10, cpu_seconds=10))
    failed = [(p.task_id, r[0]) for p, r in zip(problems, runs, strict=True) if not r[0].passed]
    assert failed == []
    wrong = {"    return None\n": "assertion", "    return 1 / 0\n": "exception", "    return (\n": "syntax",
             "    while True:\n        pass\n": "timeout", "    import os\n    os._exit(0)\n": "killed"}
    runs = execute(problems[:1] * len(wrong), [[c] for c in wrong], Limits(timeout=1.5, cpu_seconds=2))
    assert [r[0].kind for r in runs] == list(wrong.values())
    assert [r[0].error_type for r in runs] == ["AssertionError", "ZeroDivisionError", "SyntaxError", "", ""]


def test_no_text_a_program_chose_reaches_the_rows_unredacted() -> None:
    """A program that reads something and raises it: the rows (git-tracked) get the kind and a
    built-in type name only; the message is redacted and short, and in the rows only when asked."""
    problems = load_problems(2)
    leak = ("    class Exfiltrated_4f9a(Exception):\n        pass\n"
            "    raise Exfiltrated_4f9a('mail ops@codex-internal.net key AKIAIOSFODNN7EXAMPLE '\n"
            "                           + 'x' * 500)\n")
    greedy = [[leak], ["    raise ValueError('token = \"ghp_' + 'a1B2' * 9 + '\"')\n"]]
    runs = execute(problems, greedy, Limits(timeout=5, cpu_seconds=5))
    for keep in (False, True):
        _, rows, messages = score(problems, greedy, runs, None, None, resamples=0, seed=0,
                                  keep_messages=keep)
        assert [(r["kind"], r["error_type"]) for r in rows] == [("exception", "other"),
                                                                ("exception", "ValueError")]
        kept = [r["message"] for r in rows] if keep else [m["message"] for m in messages]
        assert ("message" in rows[0]) == keep and (messages == []) == keep
        assert all(len(m) <= MESSAGE_CHARS for m in kept)
        assert "codex-internal.net" not in kept[0] and "AKIAIOSFODNN7EXAMPLE" not in kept[0]
        assert "<EMAIL>" in kept[0] and "<SECRET:" in kept[0], kept[0]
        assert "ghp_" not in kept[1] and "<SECRET:" in kept[1], kept[1]
        # The completion is the model's text, written before anything ran; the rest is the harness's.
        recorded = [{k: v for k, v in r.items() if k != "completion"} for r in rows]
        assert "Exfiltrated" not in json.dumps(recorded)
    assert (recorded_type("KeyError"), recorded_type(""), recorded_type("Leak")) == ("KeyError", "", "other")
    assert recorded_message("plain") == "plain"


def test_pass_at_k_is_the_unbiased_estimator() -> None:
    for n in (1, 5, 20):
        for k in range(1, n + 1):
            got = pass_at_k(n, list(range(n + 1)), k)
            assert got.tolist() == pytest.approx([1 - comb(n - c, k) / comb(n, k) for c in range(n + 1)])
    with pytest.raises(ValueError, match="k"):
        pass_at_k(3, [1], 5)
    assert truncate_at_stop("    return x\n\ndef other():\n") == "    return x\n"
    assert truncate_at_stop("    return x\n    # fine\n") == "    return x\n    # fine\n"


def test_humaneval_params_are_checked() -> None:
    with pytest.raises(ParamsError, match=r"eval\.humaneval\.top_p: expected a number in \(0, 1\], got 0"):
        EvalParams(humaneval={"top_p": 0.0}).check()  # type: ignore[arg-type]
    with pytest.raises(ParamsError, match=r"eval\.humaneval\.nn: unknown key"):
        EvalParams(humaneval={"nn": 1})  # type: ignore[arg-type]


@pytest.mark.usefixtures("one_thread")
def test_codex_eval_humaneval_on_a_model_folder(tmp_path_factory: pytest.TempPathFactory, stdlib_sample: Path,
                                               tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ws = shared_workspace(tmp_path_factory, stdlib_sample)
    monkeypatch.chdir(tmp_path)  # no params.yaml here: the defaults apply
    args = ["eval", "--humaneval", "--model", str(ws / "models/model"), "--limit", "4", "--samples", "2",
            "--bootstrap", "50", "--batch-size", "8"]
    outputs = []
    for run in ("a", "b"):
        result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / f"{run}.json"),
                                          "--rows", str(tmp_path / f"{run}.ndjson")])
        assert result.exit_code == 0, result.output
        assert "humaneval: pass@1 " in result.stdout
        outputs.append(((tmp_path / f"{run}.json").read_bytes(), (tmp_path / f"{run}.ndjson").read_bytes()))
    assert outputs[0] == outputs[1]  # greedy and seeded samples: identical reruns
    m = json.loads(outputs[0][0])["humaneval"]
    assert m["problems"] == 4 and 0 <= m["pass@1"] <= 1 and sum(m["outcomes"].values()) == 4
    assert set(m["sampled"]) == {"n", "pass@1", "pass@1_ci"} and m["sampled"]["n"] == 2
    rows = [json.loads(line) for line in outputs[0][1].decode().splitlines()]
    assert [r["task_id"] for r in rows] == [f"HumanEval/{i}" for i in range(4)]
    assert all(len(r["samples"]) == 2 and r["kind"] in m["outcomes"] for r in rows)
    bad = CliRunner().invoke(app, ["eval", "--model", str(ws / "models/model"), "--limit", "3"])
    assert bad.exit_code == 2 and "--samples, --limit and --rows apply to --humaneval" in bad.stderr
