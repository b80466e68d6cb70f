"""An exponential moving average of the trained weights: what the train stage saves and validates.

The last iterates of a run at a finite learning rate scatter around the minimum the schedule is
descending into; their average sits nearer it, for one lerp over the parameters per step
(docs/speedrun.md measures the gain at the default's schedule).

The decay warms up as `min(decay, (1 + step) / (10 + step))` (TensorFlow's ExponentialMovingAverage
with `num_updates`): a short run averages over its own steps rather than its initialisation, and a
long one ends at `decay`. Only trainable parameters are averaged (LoRA: the adapters); frozen ones
are their own average. The average lives beside the model on its device, goes into every checkpoint
(`ema.safetensors`), and is restored with it, so a resumed run ends with the same bytes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save
from torch import nn
from transformers import TrainerCallback

from codex_ml.io import atomic_open
from codex_ml.runtime import StageError

EMA_FILE = "ema.safetensors"


def ema_decay(decay: float, step: int) -> float:
    """The decay applied by the update after optimizer step `step` (1-based)."""
    return min(decay, (1 + step) / (10 + step))


class WeightAverage:
    def __init__(self, model: nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = decay
        # named_parameters yields a tied weight once, so the tied embedding is averaged once
        self.named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
        self.average = [p.detach().clone() for _, p in self.named]
        self._scratch: dict[tuple[torch.device, torch.dtype], torch.Tensor] = {}

    @torch.no_grad()
    def update(self, step: int) -> None:
        weight = 1.0 - ema_decay(self.decay, step)
        torch._foreach_lerp_(self.average, [p.detach() for _, p in self.named], weight)

    @torch.no_grad()
    def _swap(self) -> None:
        # through one scratch buffer per device and dtype, as large as the largest parameter, kept
        # between evaluations: no per-parameter copy is allocated each time
        for (_, p), avg in zip(self.named, self.average, strict=True):
            key = (p.device, p.dtype)
            scratch = self._scratch.get(key)
            if scratch is None:
                largest = max(q.numel() for _, q in self.named if (q.device, q.dtype) == key)
                scratch = self._scratch[key] = torch.empty(largest, device=p.device, dtype=p.dtype)
            live = scratch[: p.numel()].view_as(p)
            live.copy_(p)
            p.copy_(avg)
            avg.copy_(live)

    @contextmanager
    def applied(self) -> Iterator[None]:
        """The model holds the average inside the block and its own weights again after it, exactly."""
        self._swap()
        try:
            yield
        finally:
            self._swap()

    @torch.no_grad()
    def copy_to(self) -> None:
        """Put the average into the model for good (the end of training)."""
        for (_, p), avg in zip(self.named, self.average, strict=True):
            p.copy_(avg)

    def save(self, folder: Path) -> None:
        tensors = {name: avg.detach().cpu().contiguous() for (name, _), avg in zip(self.named, self.average,
                                                                                   strict=True)}
        with atomic_open(folder / EMA_FILE, "wb") as f:
            f.write(save(tensors))

    @torch.no_grad()
    def load(self, folder: Path) -> None:
        path = folder / EMA_FILE
        if not path.is_file():
            raise StageError(f"{folder} has no {EMA_FILE}: it was written without train.ema_decay, so its "
                             f"run cannot be resumed with it")
        saved = load_file(str(path))
        names = [name for name, _ in self.named]
        if sorted(saved) != sorted(names):
            raise StageError(f"{path} averages other parameters than this model has (e.g. "
                             f"{sorted(set(saved) ^ set(names))[:3]})")
        for (name, _), avg in zip(self.named, self.average, strict=True):
            avg.copy_(saved[name])


class AverageWeights(TrainerCallback):
    """Update the average after every optimizer step (gradient accumulation included)."""

    def __init__(self, average: WeightAverage):
        self.average = average

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.average.update(state.global_step)
