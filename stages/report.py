"""report: every stage's metrics, dvc.lock and the environment -> reports/report.md + report.html."""

from pathlib import Path

import require_project  # noqa: F401  (first: one line, not a traceback, without the project)

from codex_ml.params import load_params
from codex_ml.report.build import Paths, build, write
from codex_ml.runtime import log, run_stage


def main() -> None:
    params = load_params("params.yaml")
    report = build(params.report, Paths())
    write(report, Path("reports"))
    log.info("report: reports/report.md, reports/report.html (%d figures)", len(report.figures))


if __name__ == "__main__":
    run_stage("report", main)
