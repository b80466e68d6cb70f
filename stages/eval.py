"""eval: score models/trained on the val and test token files -> metrics/eval.json, metrics/eval/."""

import stages.pin_kernels  # noqa: F401  (first: the CPU kernels, before anything loads torch)
from codex_ml import paths
from codex_ml.params import load_params
from codex_ml.runtime import log, run_stage


def main() -> None:
    params = load_params(paths.PARAMS)
    from codex_ml.eval.stage import EvalInputs, run_eval, summary_line, write_outputs  # torch: after params

    metrics, results, settings = run_eval(params.eval, EvalInputs(model_dir=paths.TRAINED),
                                          train_seq_len=params.train.context)
    write_outputs(metrics, results, settings, paths.EVAL_METRICS, paths.EVAL_ROWS)
    log.info("eval: window %d, stride %d, %s", settings["window"], settings["stride"], settings["device"])
    for name, m in metrics.items():
        log.info("eval %s", summary_line(name, m))
        if m.get("leak"):
            log.info("eval %s: %d documents (%.2f%% of bytes) with a near-duplicate in train",
                     name, m["leak"]["near_duplicate_documents"], 100 * m["leak"]["bytes_fraction"])


if __name__ == "__main__":
    run_stage("eval", main)
