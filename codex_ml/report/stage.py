"""The report stage's work: read every stage's metrics, dvc.lock and the environment, and write
`reports/report.md`, `reports/report.html` and `reports/figures/*.svg`.

The page is one call per section (sections.py, infill.py, humaneval.py), over readers (inputs.py) and number
formatting (format.py), rendered by document.py. A file that exists but cannot be read is an error
naming it.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from codex_ml.io import atomic_dir
from codex_ml.params import ReportParams
from codex_ml.report.document import Heading, Report, to_html, to_markdown
from codex_ml.report.humaneval import humaneval_section
from codex_ml.report.infill import infill_section
from codex_ml.report.inputs import Paths, read_json
from codex_ml.report.sections import (
    completion_section,
    data_section,
    diff_section,
    eval_section,
    provenance_section,
    summary_section,
    tokenizer_section,
    train_section,
)

TITLE = "codex-ml report"
__all__ = ["Paths", "build", "write"]


def build(params: ReportParams, paths: Paths,
          run: Callable[[list[str]], subprocess.CompletedProcess[str]] | None = None) -> Report:
    def run_in_root(cmd: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(cmd, cwd=paths.root, capture_output=True, text=True, check=False)

    ev = read_json(paths.at(paths.eval_json))
    settings = read_json(paths.at(paths.eval_dir / "settings.json"))
    r = Report()
    r.add(Heading(1, TITLE))
    summary_section(r, ev)
    data_section(r, paths)
    tokenizer_section(r, paths)
    train_section(r, paths)
    eval_section(r, paths, ev)
    completion_section(r, paths, params)
    infill_section(r, paths, ev)
    humaneval_section(r, paths, ev)
    diff_section(r, paths, params, run or run_in_root)
    provenance_section(r, paths, settings)
    return r


def write(report: Report, out_dir: Path) -> None:
    """report.md, report.html and figures/, swapped in as one folder."""
    with atomic_dir(out_dir) as tmp:
        (tmp / "figures").mkdir()
        for fig in report.figures:
            (tmp / "figures" / f"{fig.name}.svg").write_text(fig.svg, encoding="utf-8")
        (tmp / "report.md").write_text(to_markdown(report.blocks), encoding="utf-8")
        (tmp / "report.html").write_text(to_html(report.blocks, TITLE), encoding="utf-8")
