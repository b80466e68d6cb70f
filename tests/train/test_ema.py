"""train.ema_decay: the saved model is a warmed-up moving average of the weights, carried by checkpoints;
and train.final_seq_len, the other end-of-training change, as the Trainer feeds it to the model."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file
from torch import nn
from transformers import AutoModelForCausalLM, TrainerCallback

from codex_ml.eval.model import load_model
from codex_ml.params import load_params
from codex_ml.runtime import StageError
from codex_ml.training.checkpoint import checkpoint_dirs
from codex_ml.training.ema import EMA_FILE, WeightAverage, ema_decay
from codex_ml.training.inputs import load_token_data
from codex_ml.training.stage import run_training
from codex_ml.training.windows import EvalWindows


def test_average_follows_the_warmed_up_decay_and_swaps_back_exactly(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
    model[1].bias.requires_grad_(False)  # frozen: not averaged
    average = WeightAverage(model, 0.9)
    assert [name for name, _ in average.named] == ["0.weight", "0.bias", "1.weight"]
    expected = model[0].weight.detach().clone()
    for step in range(1, 100):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        average.update(step)
        d = min(0.9, (1 + step) / (10 + step))
        expected = d * expected + (1 - d) * model[0].weight.detach()
    assert ema_decay(0.9, 1) == pytest.approx(2 / 11) and ema_decay(0.9, 50) == pytest.approx(51 / 60)
    assert ema_decay(0.9, 99) == 0.9
    torch.testing.assert_close(average.average[0], expected)

    live = {k: v.clone() for k, v in model.state_dict().items()}
    with average.applied():
        torch.testing.assert_close(model[0].weight.detach(), expected)
        assert torch.equal(model[1].bias, live["1.bias"])  # frozen parameters untouched
    for k, v in model.state_dict().items():
        assert torch.equal(v, live[k]), k  # the live weights come back bit for bit

    average.save(tmp_path)
    restored = WeightAverage(model, 0.9)
    restored.load(tmp_path)
    for a, b in zip(average.average, restored.average, strict=True):
        assert torch.equal(a, b)
    other = WeightAverage(nn.Linear(4, 3), 0.9)
    with pytest.raises(StageError, match=r"averages other parameters than this model has"):
        other.load(tmp_path)
    with pytest.raises(StageError, match=rf"{tmp_path / 'none'} has no {EMA_FILE}"):
        other.load(tmp_path / "none")


def test_the_saved_model_is_the_average_and_every_checkpoint_carries_it(workdir: Callable[..., Path]) -> None:
    root = workdir({"train": {"ema_decay": 0.9}})
    summary = run_training(load_params(root / "params.yaml"))
    saved = load_file(str(root / "models/trained/model.safetensors"))
    last = dict(checkpoint_dirs(root / "models/checkpoints"))[30]
    average, live = load_file(str(last / EMA_FILE)), load_file(str(last / "model.safetensors"))
    assert set(average) == set(live) == set(saved)  # the tied output layer is stored once everywhere
    for name, tensor in average.items():
        assert torch.equal(saved[name], tensor), name
    assert not all(torch.equal(live[name], average[name]) for name in average)

    # The val loss the stage logs (and ranks checkpoints by) is the saved model's: the average's.
    model = AutoModelForCausalLM.from_pretrained(root / "models/trained").eval()
    val = EvalWindows(load_token_data(root / "data/tokens").val, 64, 2 * 8)
    with torch.no_grad():
        losses = [model(input_ids=ids, labels=ids).loss.item()
                  for ids in torch.stack([val[i]["input_ids"] for i in range(16)]).split(8)]
    assert summary["val/final_loss"] == pytest.approx(sum(losses) / len(losses), rel=1e-5)

    # `codex eval` and `codex generate` load a checkpoint with its average: the model its val loss scored
    assert_same_weights(last, root / "models/trained")

    off = workdir({"train": {"ema_decay": 0}}, name="off")
    run_training(load_params(off / "params.yaml"))
    last = dict(checkpoint_dirs(off / "models/checkpoints"))[30]
    assert not (last / EMA_FILE).exists()
    saved = load_file(str(off / "models/trained/model.safetensors"))
    live = load_file(str(last / "model.safetensors"))
    assert all(torch.equal(saved[name], live[name]) for name in live)
    assert_same_weights(last, off / "models/trained")


def assert_same_weights(a: Path, b: Path) -> None:
    """The model folders load (for eval and generate) with the same weights."""
    sa, sb = (load_model(folder, torch.device("cpu")).state_dict() for folder in (a, b))
    assert sa.keys() == sb.keys()
    for name, tensor in sa.items():
        assert torch.equal(tensor, sb[name]), name


class RecordShapes(TrainerCallback):
    """Records the input_ids shape of every forward pass of the model the Trainer trains."""

    def __init__(self) -> None:
        self.shapes: list[tuple[bool, tuple[int, ...]]] = []

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        def hook(module: nn.Module, inputs: tuple, kwargs: dict) -> None:
            self.shapes.append((module.training, tuple(kwargs["input_ids"].shape)))

        model.register_forward_pre_hook(hook, with_kwargs=True)


def test_the_last_steps_train_on_rejoined_final_windows(workdir: Callable[..., Path]) -> None:
    """Through the real Trainer: 24 steps of 8 x 64 tokens, then 6 of 4 x 128 (the same tokens), val
    always on 64-token windows; the saved model's context is 128."""
    root = workdir({"train": {"final_fraction": 0.2}})
    shapes = RecordShapes()
    run_training(load_params(root / "params.yaml"), callbacks=(shapes,))
    train = [shape for training, shape in shapes.shapes if training]
    assert train == [(8, 64)] * 24 + [(4, 128)] * 6
    assert {shape for training, shape in shapes.shapes if not training} == {(8, 64)}
    config = AutoModelForCausalLM.from_pretrained(root / "models/trained").config
    assert config.max_position_embeddings == 128
