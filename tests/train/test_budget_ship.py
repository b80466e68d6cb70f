"""A corpus small enough to overfit: the passes are said before training, the budget in passes ends
the run, the best val checkpoint is shipped (and recorded), and early stopping stops on val."""

from __future__ import annotations

import json
import logging
import shutil
import sysconfig
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from codex_ml.params import load_params, parse_params
from codex_ml.training.ema import EMA_FILE
from codex_ml.training.stage import run_training
from tests.conftest import merge
from tests.trainkit import MICRO, write_token_data

# One small module to train on (a few thousand tokens), others to validate on: many passes overfit.
TRAIN = ["colorsys.py"]
VAL = ["bisect.py", "keyword.py", "this.py", "fnmatch.py"]


@pytest.fixture(scope="module")
def tiny_tokens(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = Path(sysconfig.get_paths()["stdlib"])
    read = [(src / name).read_text(encoding="utf-8") for name in TRAIN + VAL]
    out = tmp_path_factory.mktemp("tiny_tokens")
    write_token_data({"train": read[:len(TRAIN)], "val": read[len(TRAIN):], "test": read[len(TRAIN):]}, out)
    return out


@pytest.fixture
def tiny(tmp_path: Path, tiny_tokens: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Path]:
    def make(overrides: dict[str, Any]) -> Path:
        root = tmp_path / "work"
        shutil.copytree(tiny_tokens, root)
        params = merge(MICRO, {"train": {"lr": 0.01, "keep_best": 1, **overrides}})
        parse_params(params)
        (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        monkeypatch.chdir(root)
        return root

    return make


def train_tokens(root: Path) -> int:
    meta = json.loads((root / "data/tokens/meta.json").read_text())
    return int(meta["splits"]["train"]["tokens"])


def test_overfitting_run_warns_of_its_passes_and_ships_the_best_val_checkpoint(
        tiny: Callable[..., Path], caplog: pytest.LogCaptureFixture) -> None:
    root = tiny({"max_steps": 80, "warmup_steps": 5})
    caplog.set_level(logging.INFO, logger="codex_ml.train")
    summary = run_training(load_params(root / "params.yaml"))

    tokens = train_tokens(root)
    passes = 80 * 8 * 64 / tokens
    assert passes > 4
    warned = [r for r in caplog.records if r.levelno == logging.WARNING and "passes over the" in r.message]
    assert len(warned) == 1
    assert f"= {passes:.2f} passes over the {tokens:,} train tokens, more than 4" in warned[0].message
    assert "train.max_epochs" in warned[0].message and "train.max_steps=80" in warned[0].message

    # It overfits: val loss is lowest well before the end, and that step is what models/trained holds.
    vals = [(e["step"], e["eval_loss"]) for e in json.loads(
        (root / "models/checkpoints/checkpoint-80/trainer_state.json").read_text())["log_history"]
        if "eval_loss" in e]
    best_step, best_loss = min(vals, key=lambda v: (v[1], -v[0]))
    assert best_step < 80 and vals[-1][1] > best_loss + 0.05
    assert summary["train/shipped_step"] == best_step and summary["train/steps"] == 80
    assert summary["val/shipped_loss"] == best_loss
    metrics = json.loads((root / "metrics/train/metrics.json").read_text())
    assert metrics["train"]["shipped_step"] == best_step
    assert metrics["train"]["shipped"].startswith(f"the lowest val loss, at step {best_step} ")
    assert metrics["train"]["passes"] == pytest.approx(passes)

    # models/trained is that checkpoint's weight average, as it was validated, to the bit.
    ema = load_file(root / f"models/checkpoints/checkpoint-{best_step}" / EMA_FILE)
    model = AutoModelForCausalLM.from_pretrained(root / "models/trained")
    weights = dict(model.named_parameters())
    assert set(ema) <= set(weights)
    assert all(torch.equal(weights[name].detach(), tensor) for name, tensor in ema.items())


def test_max_epochs_ends_the_run_in_passes_and_scales_its_schedule(
        tiny: Callable[..., Path], caplog: pytest.LogCaptureFixture) -> None:
    root = tiny({"max_steps": 1000, "max_epochs": 2, "warmup_steps": 50, "eval_every": 200,
                 "checkpoint_every": 200})
    caplog.set_level(logging.INFO, logger="codex_ml.train")
    summary = run_training(load_params(root / "params.yaml"))

    steps = int(2 * train_tokens(root) // (8 * 64))
    assert 5 < steps < 1000
    assert summary["train/steps"] == summary["train/planned_steps"] == steps
    assert 2 - 512 / train_tokens(root) < summary["train/passes"] <= 2
    assert any(r.levelno == logging.INFO and "(train.max_epochs=2 ends it before train.max_steps=1000)"
               in r.message for r in caplog.records)
    # the schedule shrinks with the steps: validated and checkpointed every 200/1000 of the run
    every = round(200 * steps / 1000)
    checkpoints = sorted(int(p.name.split("-")[1]) for p in (root / "models/checkpoints").iterdir())
    assert checkpoints[-1] == steps - steps % every and all(s % every == 0 for s in checkpoints)


def test_early_stopping_stops_after_patience_val_losses_without_a_new_best(
        tiny: Callable[..., Path]) -> None:
    root = tiny({"max_steps": 200, "warmup_steps": 5, "early_stopping_patience": 2})
    summary = run_training(load_params(root / "params.yaml"))

    state = json.loads((root / f"models/checkpoints/checkpoint-{summary['train/steps']}"
                        / "trainer_state.json").read_text())
    vals = [(e["step"], e["eval_loss"]) for e in state["log_history"] if "eval_loss" in e]
    losses = [v for _, v in vals]
    best = losses.index(min(losses))
    assert summary["train/steps"] < 200  # it overfits long before 200 steps (see above)
    assert len(losses) - 1 - best == 2  # stopped at the second val loss after the best, not later
    assert summary["train/shipped_step"] == vals[best][0]
