"""`codex compare` on real runs: the pipeline on the quick profile through DVC, committed, then `dvc exp
run` experiments beside it (half the steps; another split), compared by revision, experiment name,
folder and pooled runs, as text and as markdown."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.conftest import compose, new_repo, run

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Runs:
    repo: Path
    val_documents: int


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, stdlib_sample: Path) -> Runs:
    """A committed run (30 steps) and two experiments: `half` (15 steps) and `resplit` (val 0.3)."""
    root = tmp_path_factory.mktemp("compare")
    # the sample modules under 25 kB: 14 in val, 2 in test, 14 in train (split by their paths' hashes)
    composed = compose(root, ["model=llama-micro", "train=quick", "data=dir", f"data.path={stdlib_sample}",
                              "data.max_file_bytes=25000", "data.val_fraction=0.4", "data.test_fraction=0.05",
                              "data.held_out.min_documents=0", "data.held_out.min_bytes=0",
                              "tokenizer.vocab_size=512", "tokenizer.workers=1", "train.threads=1",
                              "eval.bootstrap=50", "eval.completion_samples=4",
                              "eval.completion_max_tokens=16", "eval.threads=1"], name="quick.yaml")
    repo = new_repo(root, yaml.safe_load(composed.read_text()))  # `-S` edits params.yaml itself
    run(["dvc", "repro"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "a run"], repo)
    run(["dvc", "exp", "run", "-S", "train.max_steps=15", "--name", "half"], repo)
    run(["dvc", "exp", "run", "-S", "data.val_fraction=0.3", "-S", "train.max_steps=10", "--name", "resplit"],
        repo)
    run(["git", "checkout", "--", "."], repo)  # the workspace as committed (an experiment run leaves its own)
    val = json.loads((repo / "metrics/eval.json").read_text())["val"]["documents"]
    return Runs(repo, val)


def compare(repo: Path, *args: str, check: bool = True) -> str:
    proc = run(["codex", "compare", *args], repo, check=check)
    return proc.stdout if check else proc.stderr


def test_a_run_against_itself_is_no_difference(runs: Runs) -> None:
    out = compare(runs.repo, "HEAD", "HEAD")
    assert f"bits per byte, val ({runs.val_documents} documents; lower is better)" in out
    assert "B-A +0.0000 (+0.00%)  95% [+0.0000, +0.0000]  p 1.0000: no difference at p < 0.01" in out


def test_half_the_steps_is_worse_beyond_doubt(runs: Runs) -> None:
    out = compare(runs.repo, "HEAD", "half", "--resamples", "2000")  # an experiment, by its name
    val = out.split("bits per byte, val", 1)[1].split("\n\n", 1)[0]
    assert val.splitlines()[1].endswith(": B worse (p < 0.01)"), out
    lo, hi = (float(x) for x in val.split("95% [", 1)[1].split("]", 1)[0].split(", "))
    assert 0 < lo < hi  # B - A: the shorter run has more bits per byte, and the interval excludes zero
    p = val.split("  p ", 1)[1].split(":", 1)[0]
    assert p == "<0.0001" or float(p) < 0.01
    assert "sign-flip permutation p over" in val and "moved most:" in val
    # the other way round, the same documents: the same size of difference, the other sign
    back = compare(runs.repo, "half", "HEAD", "--resamples", "2000").split("bits per byte, val", 1)[1]
    assert "B better (p < 0.01)" in back.split("\n\n", 1)[0]


def test_runs_on_different_splits_are_refused_with_one_message(runs: Runs) -> None:
    err = compare(runs.repo, "HEAD", "resplit", check=False)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("codex compare: error: HEAD (") and "did not score the same documents in " \
        "metrics/eval/val.ndjson" in lines[0] and "data/prepared" in lines[0], err
    assert "A paired comparison needs the same held-out documents" in lines[0]


def test_markdown_is_a_table_for_a_pull_request(runs: Runs, tmp_path: Path) -> None:
    out = compare(runs.repo, "HEAD", "half", "--md", "--out", str(tmp_path / "comment.md"))
    assert (tmp_path / "comment.md").read_text() == out
    lines = out.splitlines()
    header = lines.index("| metric | A | B | B − A | 95% interval | p | verdict |")
    assert lines[header + 1] == "|---|---:|---:|---:|---|---:|---|"
    row = lines[header + 2]
    assert row.startswith("| bits per byte, val | ") and row.endswith("| B worse (p < 0.01) |")
    assert row.count("|") == 8
    assert "| document | size | A | B | share of B − A |" in lines  # the documents that moved most


def test_pooled_runs_folders_and_the_workspace(runs: Runs) -> None:
    # two runs a side: the t over runs and documents; a folder holding metrics/ is a run too
    out = compare(runs.repo, "HEAD,half", f"{runs.repo},workspace")
    assert "A: 2 runs pooled: HEAD (" in out and f"B: 2 runs pooled: folder {runs.repo}, the workspace" in out
    assert "t over 2+2 runs (seed noise)" in out and "run-to-run sd" in out


def test_unknown_runs_and_runs_without_rows_are_one_error_each(runs: Runs) -> None:
    err = compare(runs.repo, "HEAD", "no-such-run", check=False)
    assert err.strip() == ("codex compare: error: run 'no-such-run': unknown revision or experiment "
                           "(unknown Git revision 'no-such-run'); `dvc exp show` lists experiments, "
                           "`git log` revisions")
    err = compare(runs.repo, "HEAD~1", "HEAD", check=False)  # the commit before the run: no rows
    assert err.strip().splitlines() == [
        f"codex compare: error: HEAD~1 ({err.split('HEAD~1 (', 1)[1][:7]}) has no metrics/eval/val.ndjson, "
        f"which HEAD ({err.split('HEAD (', 1)[1][:7]}) has: no per-document rows to pair (run the eval stage "
        "there, or compare runs that both have it)"]
