"""Imported first by the train and eval stage scripts (`import stages.pin_kernels`), before anything
loads torch or numpy: pins the CPU kernels that `train.kernels` / `eval.kernels` in params.yaml name
(codex_ml/kernels.py). Which stage is running is the script's name (`python -m stages.eval` and
torchrun's `-m stages.train` set it as the module's file); the libraries read these settings once,
when they load."""

import sys
from pathlib import Path

from codex_ml import paths
from codex_ml.kernels import pin_from_params

pin_from_params(paths.PARAMS, "eval" if Path(sys.argv[0]).stem == "eval" else "train")
