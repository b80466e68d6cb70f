"""report: every stage's metrics, dvc.lock and the environment -> reports/report.md + report.html."""

from codex_ml import paths
from codex_ml.params import load_params
from codex_ml.report.stage import Paths, build, write
from codex_ml.runtime import log, run_stage


def main() -> None:
    params = load_params(paths.PARAMS)
    report = build(params.report, Paths())  # Paths: codex_ml/paths.py's layout
    write(report, paths.REPORTS)
    log.info("report: reports/report.md, reports/report.html (%d figures)", len(report.figures))


if __name__ == "__main__":
    run_stage("report", main)
