"""Imported by the benchmarks that run the train stage's code, before torch loads: pins the CPU kernels
as the train stage does (codex_ml/kernels.py), `--kernels avx2|native` on the command line, else avx2,
train.kernels' default. The libraries read these settings once, when they load."""

import sys

from codex_ml.kernels import pin

pin(sys.argv[sys.argv.index("--kernels") + 1] if "--kernels" in sys.argv[:-1] else "avx2")
