"""Early stopping (train.early_stopping_patience), transformers' EarlyStoppingCallback rule: stop after
`patience` val losses in a row without a new best. It reads the val losses from the trainer's log
history, which a checkpoint carries, so a resumed run stops where an uninterrupted one would."""

from __future__ import annotations

import logging
from typing import Any

from transformers import TrainerCallback

from codex_ml.training.ship import val_losses

log = logging.getLogger("codex_ml.train")


class EarlyStopping(TrainerCallback):
    """Stop after `patience` val losses in a row with no new best (a strictly lower loss)."""

    def __init__(self, patience: int):
        self.patience = patience

    def on_evaluate(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        history = sorted(val_losses(state.log_history).items())
        if not history:
            return
        losses = [loss for _, loss in history]
        best = losses.index(min(losses))  # the first time the lowest loss was reached
        if len(losses) - 1 - best >= self.patience:
            log.info("train: stopping early at step %d: %d val losses without a new best (%.4f at step %d)",
                     state.global_step, len(losses) - 1 - best, losses[best], history[best][0])
            control.should_training_stop = True
