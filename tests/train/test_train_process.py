"""The train stage as real processes: SIGKILL mid-training then exact resume; torchrun with 2 processes."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from codex_ml.params import load_params
from codex_ml.training.checkpoint import MANIFEST
from codex_ml.training.stage import run_training
from tests.conftest import ROOT, run, stage_command, subprocess_env
from tests.trainkit import folder_hashes, series

pytestmark = pytest.mark.slow

SLOW = {"train": {"max_steps": 80, "checkpoint_every": 10, "eval_every": 40}}


def test_sigkill_mid_training_then_rerun_gives_the_uninterrupted_model(workdir: Callable[..., Path]) -> None:
    killed = workdir(SLOW, name="killed")
    proc = subprocess.Popen(stage_command("train"), cwd=killed, env=subprocess_env(PYTHONPATH=str(ROOT)),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    first = killed / "models/checkpoints/checkpoint-10" / MANIFEST
    deadline = time.monotonic() + 120
    while not first.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, f"stage ended before it could be killed:\n{proc.communicate()[0]}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (killed / "models/trained").exists()  # killed: no half-written model
    assert not (killed / "models/checkpoints/checkpoint-80").exists()

    resumed = run(stage_command("train"), killed, PYTHONPATH=str(ROOT))
    assert "resuming from models/checkpoints/checkpoint-" in resumed.stderr

    # Two clean runs (in-process: the same numerics as the stage's process) give byte-identical
    # models and checkpoints, and so does the killed-and-resumed run.
    clean = []
    for i in range(2):
        clean.append(workdir(SLOW, name=f"clean{i}"))  # and makes it the working directory
        run_training(load_params("params.yaml"))
    for out in ("models/trained", "models/checkpoints"):
        assert folder_hashes(clean[0] / out) == folder_hashes(clean[1] / out), out
        assert folder_hashes(killed / out) == folder_hashes(clean[0] / out), out


def test_torchrun_two_processes_follow_the_one_process_series(workdir: Callable[..., Path]) -> None:
    params = {"train": {"max_steps": 20, "eval_every": 10, "checkpoint_every": 10}}
    one = workdir(params, name="one")
    run_training(load_params("params.yaml"))
    two = workdir(params, name="two")
    proc = run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                "-m", "stages.train"], two, PYTHONPATH=str(ROOT))
    assert "processes" in (two / "metrics/train/metrics.json").read_text()
    # Same global batch (8 = 2 x 4), same windows, same initial weights: the same curve up to float
    # summation order (gloo all-reduce of the gradients).
    for name in ("train/loss", "val/loss"):
        a, b = series(one, name), series(two, name)
        assert [s for s, _ in a] == [s for s, _ in b]
        assert [v for _, v in b] == pytest.approx([v for _, v in a], rel=1e-4), name
    assert '"processes": 2' in (two / "metrics/train/metrics.json").read_text()
    assert (two / "models/trained/model.safetensors").is_file(), proc.stderr
