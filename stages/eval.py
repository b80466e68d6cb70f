"""eval: score models/model on the val and test token files -> metrics/eval.json, metrics/eval/."""

from pathlib import Path

import require_project  # noqa: F401  (first: one line, not a traceback, without the project)

from codex_ml.params import load_params
from codex_ml.runtime import log, run_stage


def main() -> None:
    params = load_params("params.yaml")
    # Imported after the params check: bad params fail at once, without loading torch first.
    from codex_ml.eval.evaluate import EvalInputs, run_eval, summary_line, write_outputs

    metrics, results, settings = run_eval(params.eval, EvalInputs(model_dir=Path("models/model")),
                                          train_seq_len=params.train.context)
    write_outputs(metrics, results, settings, Path("metrics/eval.json"), Path("metrics/eval"))
    log.info("eval: window %d, stride %d, %s", settings["window"], settings["stride"], settings["device"])
    for name, m in metrics.items():
        log.info("eval %s", summary_line(name, m))
        if m.get("leak"):
            log.info("eval %s: %d documents (%.2f%% of bytes) with a near-duplicate in train",
                     name, m["leak"]["near_duplicate_documents"], 100 * m["leak"]["bytes_fraction"])


if __name__ == "__main__":
    run_stage("eval", main)
