"""HumanEval: the real 164 problems' canonical solutions pass in the sandbox, wrong ones fail with the
right kind, pass@k is Chen et al.'s estimator, and `codex eval --humaneval` runs end to end."""

from __future__ import annotations

import json
from math import comb
from pathlib import Path

import pytest
from typer.testing import CliRunner

from codex_ml.cli import app
from codex_ml.eval.humaneval import execute, load_problems, pass_at_k, truncate_at_stop
from codex_ml.eval.sandbox import Limits
from codex_ml.params import EvalParams, ParamsError
from tests.evalkit import one_thread, shared_workspace  # noqa: F401  (one_thread: a fixture)


def test_every_canonical_solution_passes_and_wrong_ones_fail_with_their_kind() -> None:
    problems = load_problems()
    assert len(problems) == 164 and problems[0].task_id == "HumanEval/0"
    runs = execute(problems, [[p.canonical_solution] for p in problems], Limits(timeout=10, cpu_seconds=10))
    failed = [(p.task_id, r[0]) for p, r in zip(problems, runs, strict=True) if r[0][0] != "passed"]
    assert failed == []
    wrong = {"    return None\n": "assertion", "    return 1 / 0\n": "exception", "    return (\n": "syntax",
             "    while True:\n        pass\n": "timeout", "    import os\n    os._exit(0)\n": "killed"}
    runs = execute(problems[:1] * len(wrong), [[c] for c in wrong], Limits(timeout=1.5, cpu_seconds=2))
    assert [r[0][0] for r in runs] == list(wrong.values())


def test_pass_at_k_is_the_unbiased_estimator() -> None:
    for n in (1, 5, 20):
        for c in range(n + 1):
            for k in range(1, n + 1):
                assert pass_at_k(n, c, k) == pytest.approx(1 - comb(n - c, k) / comb(n, k))
    with pytest.raises(ValueError, match="k"):
        pass_at_k(3, 1, 5)
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
