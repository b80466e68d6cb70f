"""The train recipe in-process on real token data with llama-micro: outputs, telemetry, resume rules."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import yaml
from transformers import AutoModelForCausalLM, AutoTokenizer

from codex_ml.params import ParamsError
from codex_ml.training.checkpoint import MANIFEST, checkpoint_dirs, verify
from codex_ml.training.telemetry import nvml_available
from tests.trainkit import StopAt, folder_hashes, series, train


def test_trains_below_unigram_entropy_and_writes_model_checkpoints_and_telemetry(
        workdir: Callable[..., Path], caplog: pytest.LogCaptureFixture) -> None:
    root = workdir({"train": {"max_steps": 150, "lr": 0.01, "eval_every": 50, "checkpoint_every": 50,
                              "keep_best": 1}})
    caplog.set_level(logging.INFO, logger="codex_ml.train")
    summary = train(root)

    # It learns: the val loss ends far below the best context-free (unigram) loss.
    assert summary["val/final_loss"] < summary["data/unigram_entropy"] - 0.3

    # models/trained: a plain HF folder both Auto classes load, with the training context.
    model = AutoModelForCausalLM.from_pretrained(root / "models/trained")
    assert model.config.max_position_embeddings == 128  # the context of its last steps (final_seq_len)
    tok = AutoTokenizer.from_pretrained(root / "models/trained")
    ids = tok("import os\n", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert model(ids).logits.shape == (1, ids.shape[1], model.config.vocab_size)

    # Telemetry: every step's train loss, lr, grad norm and tokens/s; val loss; CPU, RAM and disk.
    metrics = json.loads((root / "metrics/train/metrics.json").read_text())
    assert set(metrics["train"]) >= {"loss", "learning_rate", "grad_norm", "tokens_per_s"}
    assert metrics["val"]["loss"] == summary["val/final_loss"]
    # Without NVML (as here) dvclive's GPU probe would have silenced every system metric.
    assert {"cpu", "ram", "disk"} <= set(metrics["system"])
    assert ("gpu" in metrics["system"]) == nvml_available()
    assert metrics["system"]["cpu"]["count"] >= 1
    assert [s for s, _ in series(root, "train/loss")] == list(range(1, 151))
    assert [s for s, _ in series(root, "val/loss")] == [50, 100, 150]
    assert all(v > 0 for _, v in series(root, "train/tokens_per_s"))
    if not torch.cuda.is_available():  # no CPU peak is known, and none is invented
        assert "mfu" not in metrics["train"] and "train/mfu_median" not in summary
        assert "MFU not logged: no CUDA device" in caplog.text
    lrs = [v for _, v in series(root, "train/learning_rate")]
    assert lrs[:6] == sorted(lrs[:6]) and lrs[5] == pytest.approx(0.01)  # 5 warmup steps
    assert lrs[5:] == sorted(lrs[5:], reverse=True) and lrs[-1] == pytest.approx(0.001, rel=0.01)  # cosine

    # Checkpoints: the best by val loss plus the newest, each verifying, with the sampler position.
    ckpts = checkpoint_dirs(root / "models/checkpoints")
    assert ckpts[0][0] == 150 and len(ckpts) <= 2
    for step, path in ckpts:
        assert verify(path) is None
        meta = json.loads((path / "codex.json").read_text())
        assert meta["sampler"] == {"seed": 1337, "windows_per_step": 8, "position": step * 8}
        assert (path / "model.safetensors").is_file() and not (path / "training_args.bin").exists()


def test_bad_params_stop_before_anything_is_written(workdir: Callable[..., Path],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    root = workdir({"model": {"name": "llama-huge"}})
    with pytest.raises(ParamsError, match=r"^model\.name: unknown model 'llama-huge'; known: llama-medium, "
                                          r"llama-micro"):
        train(root)
    root = workdir({"model": {"lora": {"enabled": True, "target_modules": ["qkv"]}}}, name="lora")
    with pytest.raises(ParamsError, match=r"^model\.lora\.target_modules: qkv not in the model"):
        train(root)
    monkeypatch.setenv("WORLD_SIZE", "3")  # as under torchrun --nproc_per_node 3
    root = workdir({}, name="world")
    with pytest.raises(ParamsError, match=r"^train\.batch_size: expected a multiple of the 3 processes"):
        train(root)
    for r in (root.parent / "work", root.parent / "lora", root):
        assert not (r / "models/trained").exists() and not (r / "models/checkpoints").exists()
        assert not (r / "metrics").exists()


# peft 0.21 reads transformers 5's deprecated is_gradient_checkpointing when saving: not ours.
@pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")
def test_interrupted_lora_run_resumes_to_the_identical_model(workdir: Callable[..., Path]) -> None:
    # LoRA dropout draws random numbers every step: exact only if every RNG state is restored.
    lora = {"model": {"lora": {"enabled": True, "r": 4, "dropout": 0.1,
                               "target_modules": ["q_proj", "v_proj", "down_proj"]}},
            "train": {"max_steps": 20}}
    whole = workdir(lora, name="whole")
    train(whole)
    parts = workdir(lora, name="parts")
    train(parts, callbacks=(StopAt(10),))
    assert [s for s, _ in checkpoint_dirs(parts / "models/checkpoints")] == [10]
    summary = train(parts)
    assert summary["train/resumed_from_step"] == 10
    assert folder_hashes(parts / "models/trained") == folder_hashes(whole / "models/trained")
    assert (whole / "models/trained/adapter/adapter_model.safetensors").is_file()
    # The resumed run's curves are complete: history up to the checkpoint is logged again.
    assert series(parts, "train/loss") == series(whole, "train/loss")[:10] + series(parts, "train/loss")[10:]
    assert [s for s, _ in series(parts, "train/loss")] == list(range(1, 21))
    assert [round(v, 5) for _, v in series(parts, "train/loss")] == \
        [round(v, 5) for _, v in series(whole, "train/loss")]


def test_changed_params_start_fresh_and_say_which(workdir: Callable[..., Path],
                                                  caplog: pytest.LogCaptureFixture) -> None:
    root = workdir({"train": {"max_steps": 20, "fim": {"rate": 0.5}}})
    train(root)
    first = folder_hashes(root / "models/trained")
    caplog.set_level(logging.INFO, logger="codex_ml.train")
    train(root)  # same params: resumes the final checkpoint, nothing left to train, same model
    assert "resuming from models/checkpoints/checkpoint-20 (step 20)" in caplog.text
    assert folder_hashes(root / "models/trained") == first
    caplog.clear()
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["train"] |= {"lr": 0.001, "fim": {"rate": 0.25}}  # the FIM rate makes other windows
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    summary = train(root)
    assert "train.fim.rate: 0.5 -> 0.25; train.lr: 0.003 -> 0.001): not resumed" in caplog.text
    assert "starting fresh" in caplog.text and "resuming" not in caplog.text
    assert summary["train/resumed_from_step"] == 0
    assert folder_hashes(root / "models/trained") != first


def test_corrupt_checkpoint_is_named_skipped_and_an_older_one_resumed(
        workdir: Callable[..., Path], caplog: pytest.LogCaptureFixture) -> None:
    root = workdir({"train": {"max_steps": 30, "keep_best": 3}})
    train(root)
    expected = folder_hashes(root / "models/trained")
    steps = [s for s, _ in checkpoint_dirs(root / "models/checkpoints")]
    assert steps == [30, 20, 10]
    newest = root / "models/checkpoints/checkpoint-30"
    data = bytearray((newest / "model.safetensors").read_bytes())
    data[-10] ^= 0xFF  # one flipped bit-pattern in the weights
    (newest / "model.safetensors").write_bytes(bytes(data))
    (root / "models/checkpoints/checkpoint-20" / MANIFEST).unlink()  # as if killed while saving
    caplog.set_level(logging.INFO, logger="codex_ml.train")
    summary = train(root)
    assert "checkpoint models/checkpoints/checkpoint-30 is corrupt (model.safetensors: sha256 mismatch)" \
        in caplog.text
    assert "checkpoint-20 is corrupt (no manifest" in caplog.text
    assert summary["train/resumed_from_step"] == 10
    assert folder_hashes(root / "models/trained") == expected
