"""The training budget: how many steps a run takes, from train.max_steps and train.max_epochs.

A pass is one pass over the train split's tokens (one step trains batch_size x grad_accum x seq_len
tokens: a final_seq_len phase has fewer, longer windows of the same tokens). With train.max_epochs
set, the run ends at whichever of the two comes first. A run cut short by max_epochs is the same
schedule compressed: warmup, eval and checkpoint intervals shrink by the same ratio as the steps, so
it still warms up over the same share of the run and is validated (and checkpointed) as many times.

Repeating data is cheap only up to a point: in Muennighoff et al. 2023 (docs/sources.md) up to ~4
passes over the same tokens cost little against as many fresh ones, and returns fall fast after; a run
that will make more passes than that says so before it starts.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from codex_ml.params import TrainParams

log = logging.getLogger("codex_ml.train")

MANY_PASSES = 4.0  # more passes than this: one warning line before training (Muennighoff et al. 2023)


@dataclass(frozen=True)
class Budget:
    steps: int  # optimizer steps this run takes (unless it stops early on val)
    tokens_per_step: int
    train_tokens: int
    by_epochs: bool  # train.max_epochs ended it before train.max_steps

    @property
    def passes(self) -> float:
        return self.passes_at(self.steps)

    def passes_at(self, step: int) -> float:
        return step * self.tokens_per_step / self.train_tokens


def plan(tp: TrainParams, train_tokens: int) -> Budget:
    """The steps `tp` asks for on a train split of `train_tokens` tokens (at least one step)."""
    per_step = tp.batch_size * tp.grad_accum * tp.seq_len
    steps, by_epochs = tp.max_steps, False
    if tp.max_epochs is not None:
        cap = max(1, math.floor(tp.max_epochs * train_tokens / per_step))
        if cap < steps:
            steps, by_epochs = cap, True
    return Budget(steps=steps, tokens_per_step=per_step, train_tokens=train_tokens, by_epochs=by_epochs)


def scaled(tp: TrainParams, budget: Budget) -> TrainParams:
    """`tp` as the run uses it: unchanged, or with max_steps cut to the budget and warmup_steps,
    eval_every and checkpoint_every scaled by the same ratio (each at least 1 step)."""
    if budget.steps == tp.max_steps:
        return tp
    ratio = budget.steps / tp.max_steps

    def scale(steps: int) -> int:
        return max(1, round(steps * ratio))

    warmup = min(round(tp.warmup_steps * ratio), budget.steps - 1)
    return tp.model_copy(update={"max_steps": budget.steps, "warmup_steps": warmup,
                                 "eval_every": scale(tp.eval_every),
                                 "checkpoint_every": scale(tp.checkpoint_every)})


def describe(tp: TrainParams, budget: Budget) -> tuple[int, str]:
    """(log level, the one line said before training): the steps and the passes they make, and past
    MANY_PASSES a warning naming the keys that change it."""
    head = (f"train: {budget.steps:,} steps of {budget.tokens_per_step:,} tokens = {budget.passes:.2f} "
            f"passes over the {budget.train_tokens:,} train tokens")
    if budget.passes > MANY_PASSES:
        return logging.WARNING, (
            f"{head}, more than {MANY_PASSES:g}: past ~{MANY_PASSES:g} passes repeated tokens add little and "
            f"the model overfits (set train.max_epochs, e.g. -S train.max_epochs={MANY_PASSES:g}, or lower "
            f"train.max_steps={tp.max_steps})")
    if budget.by_epochs:
        return logging.INFO, (f"{head} (train.max_epochs={tp.max_epochs:g} ends it before "
                              f"train.max_steps={tp.max_steps})")
    return logging.INFO, head
