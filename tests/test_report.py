"""The report: built from real stage outputs, honest about missing ones, self-contained, rendered by
a real browser without console errors."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from codex_ml.eval.humaneval import execute, load_problems, score
from codex_ml.eval.sandbox import Limits
from codex_ml.eval.stage import EvalInputs, SplitResult, run_eval, write_outputs
from codex_ml.params import EvalParams, InfillParams, ReportParams
from codex_ml.report.document import Code, Note, Para, Table, to_html, to_markdown
from codex_ml.report.provenance import git_state
from codex_ml.report.stage import Paths, build, write
from codex_ml.report.summary import summary_lines
from codex_ml.runtime import StageError
from tests.chromium import chromium_binary, file_url, open_page
from tests.evalkit import shared_workspace

pytestmark = pytest.mark.usefixtures("one_thread")

# Every figure: its size, how many shapes it drew, and whether any text overflowed its box.
PROBE = """(() => {
  const figs = Array.from(document.querySelectorAll('figure'));
  return {
    title: document.title,
    sections: Array.from(document.querySelectorAll('h2')).map(h => h.textContent),
    figures: figs.map(f => {
      const svg = f.querySelector('svg');
      const r = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
      return {id: f.id, width: r.width, height: r.height,
              shapes: svg ? svg.querySelectorAll('polyline,rect,line,circle').length : 0};
    }),
    images: Array.from(document.images).map(i => [i.src, i.complete && i.naturalWidth > 0]),
  };
})()"""


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory: pytest.TempPathFactory, stdlib_sample: Path) -> Path:
    """A workspace with real prepare metrics, dvclive training metrics and eval outputs."""
    ws = tmp_path_factory.mktemp("report") / "ws"
    shutil.copytree(shared_workspace(tmp_path_factory, stdlib_sample), ws)
    params = EvalParams(bootstrap=200, completion_samples=10, completion_max_tokens=20,
                        infill=InfillParams(line=6, block=3))
    inputs = EvalInputs(ws / "models/model", ws / "data/tokens", ws / "data/prepared")
    metrics, results, settings = run_eval(params, inputs, train_seq_len=64)
    write_outputs(metrics, results, settings, ws / "metrics/eval.json", ws / "metrics/eval")
    return ws


def test_report_shows_every_input_and_says_what_is_missing(evaluated: Path, tmp_path: Path) -> None:
    report = build(ReportParams(completion_examples=2), Paths(root=evaluated))
    write(report, tmp_path / "reports")
    md = (tmp_path / "reports/report.md").read_text()
    ev = json.loads((evaluated / "metrics/eval.json").read_text())
    prep = json.loads((evaluated / "metrics/prepare.json").read_text())
    # the headline: val bits per byte beside xz's, the numbers of metrics/eval.json
    assert f"Validation bits per byte: {ev['val']['bits_per_byte']:.4f}" in md
    assert f"xz -9e {ev['val']['baselines']['xz_bpb']:.4f}" in md
    low, high = ev["test"]["bits_per_byte_ci"]
    assert f"{ev['test']['bits_per_byte']:.4f} \\[{low:.4f}, {high:.4f}\\]" in md
    assert f"| val | {prep['documents']['val']:,} | {prep['bytes']['val']:,} |" in md
    # held-out hygiene from metrics/prepare.json, and eval's leak audit per split
    removed = prep["decontaminated"]["humaneval"]
    assert f"| holds a humaneval problem: removed from every split | {removed:,} |" in md
    assert ("| near-duplicate of another split's document: moved to its split (Jaccard \\>= 0.6) | "
            f"{prep['cross_split_near_duplicates']:,} |") in md
    assert "Leak audit: held-out documents with a near-duplicate in train (MinHash, Jaccard \\>= 0.7)" in md
    assert f"| test | {ev['test']['leak']['near_duplicate_documents']:,} | 0.00% | none |" in md
    # training curves from the dvclive files; what was not logged is said, not drawn
    names = sorted(p.name for p in (tmp_path / "reports/figures").iterdir())
    assert names == ["eval_bits_per_byte.svg", "train_cpu.svg", "train_learning_rate.svg", "train_loss.svg",
                     "train_ram.svg", "train_tokens_per_s.svg"]
    for n in names:
        assert f"](figures/{n})" in md
    assert "Not logged by this run: train/grad\\_norm" in md
    # the tokenize stage did not run here: a statement, no invented numbers
    assert "metrics/tokenize.json not found: tokenizer statistics are not available" in md
    assert "report.baseline\\_rev is not set" in md
    assert md.count("— exact match") + md.count("— no match") == 2
    # infilling: the byte tokenizer has no sentinels, so its middles are written and scored left to right
    line = ev["val"]["infill"]["line"]  # the first column: val line, val block, test line, test block
    assert "## Infilling" in md and "written left to right from the prefix" in md
    assert f"| exact match | {line['exact_match']:.3f}" in md
    assert f"| middle bits per byte, left to right | {line['middle_bpb_l2r']:.4f}" in md
    summary = "\n".join(summary_lines(Paths(root=evaluated)))
    assert f"val   line: exact match {line['exact_match']:.3f}" in summary
    assert "No git commit: not a git repository." in md
    html = (tmp_path / "reports/report.html").read_text()
    # self-contained: no attribute loads anything (the SVG namespace is a name, not a resource); the one
    # link is to the dataset card beside it (the model card: release has not run here)
    assert not re.search(r"""\bsrc\s*=""", html)
    assert re.findall(r'\bhref\s*=\s*"([^"]*)"', html) == ["../data/prepared/README.md"]
    assert "The dataset card: [`data/prepared/README.md`](../data/prepared/README.md)." in md
    assert "The model card, `models/model/README.md`, is not written yet." in md
    assert "<script" not in html and "@import" not in html and "url(" not in html
    assert html.count("<svg") == len(names)


def test_humaneval_section_shows_pass_at_k_outcomes_and_examples(evaluated: Path, tmp_path: Path) -> None:
    md = to_markdown(build(ReportParams(), Paths(root=evaluated)).blocks)
    assert "HumanEval did not run (eval.humaneval.enabled is false" in md
    # Real outcomes from the sandbox: canonical solutions pass, wrong completions fail with their kind.
    problems = load_problems(4)
    wrong = {2: "    return None\n", 3: "    return 1 / 0\n"}
    greedy = [[wrong.get(i, p.canonical_solution)] for i, p in enumerate(problems)]
    sampled = [[p.canonical_solution] * i + ["    return None\n"] * (10 - i) for i, p in enumerate(problems)]
    limits = Limits(timeout=5, cpu_seconds=5)
    metrics, rows, messages = score(problems, greedy, execute(problems, greedy, limits), sampled,
                                    execute(problems, sampled, limits), resamples=200, seed=0)
    metrics["max_new_tokens"] = 128
    ws = tmp_path / "ws"
    write_outputs({"humaneval": metrics}, [SplitResult("humaneval", metrics, rows, messages=messages)], {},
                  ws / "metrics/eval.json", ws / "metrics/eval", ws / "logs/eval/humaneval_messages.ndjson")
    # The rows (git) hold kinds and built-in exception types; the messages are in the log only.
    assert [(r["kind"], r["error_type"]) for r in rows] == [("passed", ""), ("passed", ""),
                                                            ("assertion", "AssertionError"),
                                                            ("exception", "ZeroDivisionError")]
    assert all("message" not in r for r in rows)
    logged = (ws / "logs/eval/humaneval_messages.ndjson").read_text().splitlines()
    assert json.loads(logged[3])["message"] == "division by zero"
    md = to_markdown(build(ReportParams(), Paths(root=ws)).blocks)
    section = md.split("## HumanEval")[1].split("\n## ")[0]
    low, high = metrics["pass@1_ci"]
    assert metrics["pass@1"] == 0.5
    assert f"Greedy pass@1: 0.5000 \\[{low:.4f}, {high:.4f}\\]" in section
    assert "2 of 4 problems pass" in section and "metrics/eval/humaneval.csv" in section
    s = metrics["sampled"]  # problem i: i of 10 samples pass
    assert s["pass@1"] == pytest.approx((0 + 1 + 2 + 3) / 40) and s["pass@10"] == 0.75
    assert f"| 10 | {s['pass@10']:.4f} \\[{s['pass@10_ci'][0]:.4f}, {s['pass@10_ci'][1]:.4f}\\] |" in section
    assert "| passed | 2 |" in section and "| assertion | 1 |" in section and "| exception | 1 |" in section
    for task, kind in [("HumanEval/0", "passed"), ("HumanEval/1", "passed"), ("HumanEval/2", "assertion"),
                       ("HumanEval/3", "exception (ZeroDivisionError)")]:
        assert f"`{task}` — {kind}" in section, task
    assert problems[0].canonical_solution.strip().splitlines()[0] in section


def test_report_is_deterministic(evaluated: Path, tmp_path: Path) -> None:
    for name in ("a", "b"):
        write(build(ReportParams(), Paths(root=evaluated)), tmp_path / name)
    for f in ("report.md", "report.html", "figures/train_loss.svg", "figures/eval_bits_per_byte.svg"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f


def test_an_empty_workspace_gives_statements_not_numbers(tmp_path: Path) -> None:
    report = build(ReportParams(), Paths(root=tmp_path))
    md = to_markdown(report.blocks)
    for path in ("metrics/prepare.json", "metrics/tokenize.json", "metrics/train/metrics.json",
                 "metrics/train/plots/metrics", "metrics/eval.json"):
        assert f"{path} not found" in md, path
    assert "No eval metrics" in md and not report.figures
    # the only numbers are versions, hardware and core counts from the provenance section
    before_provenance = md.split("## Provenance")[0]
    assert not re.search(r"\d", before_provenance.replace("h2", "")), before_provenance


def test_unreadable_input_is_an_error_naming_it(evaluated: Path, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    shutil.copytree(evaluated / "metrics", ws / "metrics")
    (ws / "metrics/eval.json").write_text("{not json")
    with pytest.raises(StageError, match=re.escape("metrics/eval.json: cannot read it as JSON")):
        build(ReportParams(), Paths(root=ws))


def test_git_provenance_and_a_bad_baseline_revision(evaluated: Path, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    shutil.copytree(evaluated / "metrics", ws / "metrics")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], cwd=ws, check=True)
    subprocess.run([*git, "add", "-A"], cwd=ws, check=True)
    subprocess.run([*git, "commit", "-qm", "x"], cwd=ws, check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ws, capture_output=True, text=True).stdout.strip()
    assert git_state(ws).commit == head and git_state(ws).dirty == []
    (ws / "metrics/prepare.json").write_text("{}")
    assert git_state(ws).dirty == [" M metrics/prepare.json"]
    md = to_markdown(build(ReportParams(), Paths(root=ws)).blocks)
    assert f"Git commit `{head}`; working tree dirty (1 paths changed or untracked)." in md
    with pytest.raises(StageError, match=re.escape("report.baseline_rev: 'no-such-rev' is not a commit")):
        build(ReportParams(baseline_rev="no-such-rev"), Paths(root=ws))


def test_markdown_and_html_escape_what_they_show() -> None:
    blocks = [Para(["a_b *c* <d>", Code("x|`y`")]), Note("<script>"), Table(["h|1"], [[Code("a|b")]])]
    md = to_markdown(blocks)
    assert "a\\_b \\*c\\* \\<d\\>" in md and "`` x|`y` ``" in md and "\\<script\\>" in md
    assert "| `a\\|b` |" in md  # a table cell ends at any unescaped "|", even in code
    html = to_html(blocks, "t")
    assert "&lt;script&gt;" in html and "<script>" not in html


@pytest.mark.skipif(chromium_binary() is None, reason="chromium not installed (.ci/run installs it)")
def test_html_renders_in_chromium_with_figures_and_no_console_errors(evaluated: Path, tmp_path: Path) -> None:
    write(build(ReportParams(), Paths(root=evaluated)), tmp_path / "reports")
    page = open_page(file_url(tmp_path / "reports/report.html"), PROBE)
    assert page.errors() == []
    assert page.requests == [file_url(tmp_path / "reports/report.html")]  # nothing else was fetched
    v = page.value
    assert v["title"] == "codex-ml report"
    assert v["sections"] == ["Data", "Tokenizer", "Training", "Evaluation", "Sample completions", "Infilling",
                             "HumanEval",
                             "Comparison with a baseline revision", "Provenance"]
    assert len(v["figures"]) == 6 and v["images"] == []
    for fig in v["figures"]:
        assert fig["width"] > 300 and fig["height"] > 100 and fig["shapes"] > 5, fig


@pytest.mark.skipif(chromium_binary() is None, reason="chromium not installed (.ci/run installs it)")
def test_the_browser_check_does_catch_errors(tmp_path: Path) -> None:
    # The same check on a page with a script error and an external image must fail.
    page = tmp_path / "bad.html"
    page.write_text("<!DOCTYPE html><html><body><img src='https://example.invalid/x.png'>"
                    "<script>console.error('boom'); undefinedFunction();</script></body></html>")
    result = open_page(file_url(page), "document.title")
    errors = result.errors()
    assert any("boom" in e for e in errors)
    assert any(e.startswith("exception:") for e in errors)
    assert "https://example.invalid/x.png" in result.requests
