"""train: data/tokens + models/tokenizer -> models/trained, models/checkpoints, metrics/train.

Runs as one process (`python -m stages.train`, as `dvc repro train` does) or as many
(`torchrun --nproc_per_node N -m stages.train`).
"""

import stages.pin_kernels  # noqa: F401  (first: the CPU kernels, before anything loads torch)
from codex_ml import paths
from codex_ml.params import load_params
from codex_ml.runtime import run_stage
from codex_ml.training.stage import TrainPaths, run_training


def main() -> None:
    run_training(load_params(paths.PARAMS), TrainPaths())  # TrainPaths: codex_ml/paths.py's layout


if __name__ == "__main__":
    run_stage("train", main)
