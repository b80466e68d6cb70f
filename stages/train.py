"""train: data/tokens + models/tokenizer -> models/model, models/checkpoints, metrics/train.

Runs as one process (`dvc repro train`) or as many (`torchrun --nproc_per_node N stages/train.py`).
"""

import require_project  # noqa: F401  (first: one line, not a traceback, without the project)

from codex_ml.params import load_params
from codex_ml.runtime import run_stage
from codex_ml.training.run import run_training


def main() -> None:
    run_training(load_params("params.yaml"))


if __name__ == "__main__":
    run_stage("train", main)
