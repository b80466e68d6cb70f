"""train.parallel: fsdp through Trainer's own FSDP2. accelerate runs FSDP on accelerator devices only
(on CPU Trainer would train DDP and call it FSDP), so on CPU the stage refuses it with one error; the
GPU tests (2 processes against 1, exact resume, bf16 with CPU offload) run where CUDA devices are."""

from __future__ import annotations

import re
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from codex_ml.params import ParamsError, load_params, parse_params
from codex_ml.runtime import StageError
from codex_ml.training.stage import run_training
from tests.conftest import ROOT, merge, run
from tests.trainkit import folder_hashes, series

pytestmark = [pytest.mark.cluster]

# AdamW (Muon's orthogonalisation needs whole matrices, not FSDP's row shards); the weight average
# (train.ema_decay) runs on the shards as it does on whole tensors.
FSDP = {"train": {"max_steps": 20, "eval_every": 10, "checkpoint_every": 10, "optimizer": "adamw",
                  "parallel": "fsdp"}}
# NCCL's reduce-scatter sums in another order than one process's backward: the same curve to float
# rounding, compounded over 20 steps.
REL = 1e-4


def torchrun(folder: Path, nproc: int = 2) -> str:
    return run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
                "-m", "stages.train"], folder, PYTHONPATH=str(ROOT)).stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU refusal; CUDA runs the GPU tests below")
def test_fsdp_on_cpu_is_one_error_not_silent_ddp(workdir: Callable[..., Path],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    workdir(FSDP, name="cpu")
    monkeypatch.setenv("LOCAL_RANK", "0")  # as under torchrun
    with pytest.raises(StageError, match=r"train\.parallel: fsdp needs CUDA devices"):
        run_training(load_params("params.yaml"))
    assert not Path("models/trained").exists()


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="FSDP on 2 processes needs 2 GPUs")
def test_fsdp_on_two_gpus_follows_one_process_and_resumes_exactly(workdir: Callable[..., Path]) -> None:
    one = workdir(FSDP, name="one")
    run_training(load_params("params.yaml"))  # one process, no torchrun: plain training
    two = workdir(FSDP, name="two")
    log = torchrun(two)
    # Sharded for real: each process held about half of the parameter values (its DTensor shards).
    held = {int(r): (int(h), int(n)) for r, h, n in
            re.findall(r"FSDP: process (\d) of 2 held (\d+) of the model's (\d+) parameter values", log)}
    assert sorted(held) == [0, 1], log
    assert all(h < 0.6 * n for h, n in held.values()) and sum(h for h, _ in held.values()) == held[0][1]
    for name in ("train/loss", "val/loss"):
        a, b = series(one, name), series(two, name)
        assert [s for s, _ in a] == [s for s, _ in b]
        assert [v for _, v in b] == pytest.approx([v for _, v in a], rel=REL), name
    files = sorted(p.name for p in (two / "models/trained").iterdir())
    assert "model.safetensors" in files and not [f for f in files if "shard" in f or f.endswith(".distcp")]
    resumed = workdir(FSDP, name="resumed")
    (resumed / "models/checkpoints").mkdir(parents=True)
    shutil.copytree(two / "models/checkpoints/checkpoint-10", resumed / "models/checkpoints/checkpoint-10")
    torchrun(resumed)
    assert folder_hashes(resumed / "models/trained") == folder_hashes(two / "models/trained")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="bf16 mixed precision and CPU offload need CUDA")
def test_fsdp_bf16_with_cpu_offload_on_a_gpu_follows_the_plain_bf16_run(workdir: Callable[..., Path]) -> None:
    params = merge(FSDP, {"train": {"dtype": "bfloat16", "threads": 0}})
    plain = workdir(params, name="plain")
    run_training(load_params("params.yaml"))  # no torchrun: plain bf16 on the GPU
    offload = workdir(merge(params, {"train": {"fsdp_cpu_offload": True}}), name="offload")
    log = torchrun(offload, nproc=1)
    assert "FSDP: process 0 of 1 held" in log
    # bf16 rounds each matmul to 8 bits of mantissa: the curves agree to bf16's precision, not float32's.
    for name in ("train/loss", "val/loss"):
        assert [v for _, v in series(offload, name)] == pytest.approx(
            [v for _, v in series(plain, name)], rel=2e-2), name
    assert (offload / "models/trained/model.safetensors").is_file()


@pytest.mark.parametrize(("train", "model", "message"), [
    ({"fsdp_cpu_offload": True}, {}, "train.fsdp_cpu_offload: true needs train.parallel: fsdp"),
    ({"parallel": "fsdp"}, {"lora": {"enabled": True}}, "train.parallel: fsdp does not train LoRA adapters"),
    ({"parallel": "zero3"}, {}, "train.parallel"),
])
def test_fsdp_params_are_checked(train: dict, model: dict, message: str) -> None:
    with pytest.raises(ParamsError, match=re.escape(message)):
        parse_params({"train": train, "model": model}, "params.yaml")
