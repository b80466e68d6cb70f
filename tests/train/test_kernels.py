"""The CPU kernels (codex_ml/kernels.py) as the train stage runs them: it pins them itself, so the model's
bytes are those of every library capped at AVX2 from the environment, at any thread count; and on a CPU
with AVX-512 the native kernels write other bytes (the pin is what makes them equal)."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from codex_ml.kernels import PINNED, pin_from_params
from tests.conftest import ROOT, subprocess_env

pytestmark = pytest.mark.slow

SHORT = {"train": {"max_steps": 6, "eval_every": 6, "checkpoint_every": 6}}
# What the environment caps when the pipeline pins nothing (train.kernels: native): every library at
# AVX2, MKL's gemm in its strict mode (the same bits for any thread count, as the stage pins it).
CAPPED = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2,STRICT", "ONEDNN_MAX_CPU_ISA": "AVX2",
          "OPENBLAS_CORETYPE": "Haswell"}


def avx512() -> bool:
    flags = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace") if Path(
        "/proc/cpuinfo").is_file() else ""
    return " avx512f" in flags


def train(root: Path, **env: str) -> tuple[str, str]:
    """The train stage as its own process, in an environment holding none of the kernel settings but
    `env`; (sha256 of the model's weights, the stage's log)."""
    full = subprocess_env()
    for key in PINNED:
        full.pop(key, None)
    full.update(env, PYTHONPATH=str(ROOT))  # `python -m stages.train`, as dvc.yaml runs it
    proc = subprocess.run([sys.executable, "-m", "stages.train"], cwd=root, env=full, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr
    digest = hashlib.sha256((root / "models/trained/model.safetensors").read_bytes()).hexdigest()
    return digest, proc.stderr


def test_the_stage_pins_the_kernels_an_avx2_environment_would(workdir: Callable[..., Path]) -> None:
    pinned, log = train(workdir(SHORT, name="pipeline"))  # train.kernels avx2 (the default), 1 thread
    assert "CPU kernels avx2: ATen AVX2" in log
    capped, log = train(workdir({**SHORT, "train": {**SHORT["train"], "kernels": "native", "threads": 2}},
                                name="capped"), **CAPPED)
    assert "CPU kernels native: ATen AVX2" in log
    assert capped == pinned  # and 2 threads against 1: the thread count does not enter the bytes
    if avx512():
        native, log = train(workdir({**SHORT, "train": {**SHORT["train"], "kernels": "native"}},
                                    name="native"))
        assert "CPU kernels native: ATen AVX512" in log
        assert native != pinned  # this CPU's own kernels: other bytes, which the pin removes


def test_kernels_pinned_after_torch_loaded_are_one_error(tmp_path: Path) -> None:
    """A process that loaded torch before pinning cannot change its kernels any more: pinning says so,
    and the stage's check stops a run on other kernels than its params name."""
    env = subprocess_env()
    for key in PINNED:
        env.pop(key, None)
    late = ("import torch\nfrom codex_ml.kernels import pin\npin('native')\n"  # pins nothing: fine
            "try:\n    pin('avx2')\nexcept Exception as exc:\n    print(exc)\n"
            "from codex_ml.kernels import check\n"
            "try:\n    check('avx2', 'train.kernels')\nexcept Exception as exc:\n    print(exc)\n")
    proc = subprocess.run([sys.executable, "-c", late], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    said = proc.stdout.splitlines()
    assert said[0] == ("kernels avx2: torch and numpy loaded before the kernels were pinned; call "
                       "codex_ml.kernels.pin first (the stage scripts do)")
    if avx512():  # ATen chose AVX-512 on its own: the check sees it
        assert said[1].startswith("train.kernels avx2: the kernels in use are ATen AVX512")
    (tmp_path / "params.yaml").write_text("train:\n  kernels: fast\n")
    pin_from_params(tmp_path / "params.yaml", "train")  # not a name: left to the params' validation
