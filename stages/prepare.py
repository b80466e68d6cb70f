"""prepare: collect documents from data.source into data/prepared/{train,val,test}-NNNNN.jsonl."""

from codex_ml import paths
from codex_ml.data.stage import prepare
from codex_ml.params import load_params
from codex_ml.runtime import log, run_stage


def main() -> None:
    params = load_params(paths.PARAMS)
    m = prepare(params.data, paths.PREPARED, paths.PREPARE_METRICS)
    log.info("prepare: %s documents, %s bytes; rejected %s; duplicates %d, near-duplicates %d; redactions %s",
             m["documents"], m["bytes"], {k: v for k, v in m["rejected"].items() if v},
             m["duplicates"], m["near_duplicates"], {k: v for k, v in m["redactions"].items() if v})


if __name__ == "__main__":
    run_stage("prepare", main)
