"""train.parallel: fsdp for real: 2 processes under torchrun over gloo on CPU train through Trainer's
own FSDP2 (parameters, gradients and optimizer state sharded); the losses follow the 1-process run,
a run resumed from an FSDP checkpoint ends on the uninterrupted run's model, and models/model is one
plain Hugging Face folder. bf16 and CPU offload need CUDA: tested where there is one."""

from __future__ import annotations

import re
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from codex_ml.params import load_params
from codex_ml.training.run import run_training
from tests.conftest import ROOT, run
from tests.train.test_train_process import loss_curve
from tests.train.test_train_run import folder_hashes

pytestmark = [pytest.mark.slow, pytest.mark.cluster]

STAGE = str(ROOT / "stages" / "train.py")
# AdamW (Muon's orthogonalisation needs whole matrices, not FSDP's row shards); the weight average
# (train.ema_decay) runs on the shards as it does on whole tensors.
FSDP = {"train": {"max_steps": 20, "eval_every": 10, "checkpoint_every": 10, "optimizer": "adamw",
                  "parallel": "fsdp"}}
# Gloo's all-reduce and reduce-scatter sum in another order than one process's backward: the same
# curve to float32 rounding, compounded over 20 steps.
REL = 1e-4


def torchrun(folder: Path, nproc: int = 2) -> str:
    return run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
                STAGE], folder).stderr


def test_fsdp_on_two_processes_follows_one_process_and_resumes_exactly(workdir: Callable[..., Path]) -> None:
    one = workdir(FSDP, name="one")
    run_training(load_params("params.yaml"))  # one process: train.parallel does not apply
    two = workdir(FSDP, name="two")
    log = torchrun(two)
    # Sharded for real: each process held about half of the parameter values (its DTensor shards).
    held = {int(r): (int(h), int(n)) for r, h, n in
            re.findall(r"FSDP: process (\d) of 2 held (\d+) of the model's (\d+) parameter values", log)}
    assert sorted(held) == [0, 1], log
    assert all(h < 0.6 * n for h, n in held.values()) and sum(h for h, _ in held.values()) == held[0][1]
    for name in ("train/loss", "val/loss"):
        a, b = loss_curve(one, name), loss_curve(two, name)
        assert [s for s, _ in a] == [s for s, _ in b]
        assert [v for _, v in b] == pytest.approx([v for _, v in a], rel=REL), name
    assert '"processes": 2' in (two / "metrics/train/metrics.json").read_text()

    # models/model: one plain HF folder, the full (unsharded) weights, loadable without FSDP.
    from transformers import AutoModelForCausalLM

    files = sorted(p.name for p in (two / "models/model").iterdir())
    assert "model.safetensors" in files and not [f for f in files if "shard" in f or f.endswith(".distcp")]
    loaded = AutoModelForCausalLM.from_pretrained(two / "models/model")
    reference = AutoModelForCausalLM.from_pretrained(one / "models/model")
    for (k, v), (k2, v2) in zip(loaded.state_dict().items(), reference.state_dict().items(), strict=True):
        assert k == k2 and v.shape == v2.shape
        torch.testing.assert_close(v, v2, rtol=1e-3, atol=1e-4)

    # Resume: a run that finds the uninterrupted run's step-10 checkpoint ends on its model.
    resumed = workdir(FSDP, name="resumed")
    (resumed / "models/checkpoints").mkdir(parents=True)
    shutil.copytree(two / "models/checkpoints/checkpoint-10", resumed / "models/checkpoints/checkpoint-10")
    torchrun(resumed)
    assert folder_hashes(resumed / "models/model") == folder_hashes(two / "models/model")
