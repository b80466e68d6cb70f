"""Which weights become models/model: the best on val (train.ship: best) or the last step's.

transformers' load_best_model_at_end idea, on this project's verified checkpoints: the candidates are
the last step (always validated: trainer.EvalOnSave) and every checkpoint of this run that verifies
(its manifest and fingerprint: checkpoint.py; retention always keeps the best train.keep_best by val
loss). The lowest val loss wins, a tie going to the later step, so a run whose val loss still falls
at its end ships exactly what it would without this. A checkpoint is shipped as it was validated:
its weight average (train.ema_decay) where there is one, else its weights.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codex_ml.training.checkpoint import checkpoint_dirs, read_checkpoint, verify

log = logging.getLogger("codex_ml.train")


@dataclass(frozen=True)
class Shipped:
    step: int
    val_loss: float | None
    reason: str  # for metrics/train/metrics.json (train/shipped) and the log
    checkpoint: Path | None  # None: the weights in memory (the last step's)


def val_losses(log_history: list[dict[str, Any]]) -> dict[int, float]:
    """step -> val loss, from the trainer's log history (the last one logged at a step)."""
    return {int(e["step"]): float(e["eval_loss"]) for e in log_history if "eval_loss" in e}


def last(last_step: int, log_history: list[dict[str, Any]], why: str) -> Shipped:
    """The last step's weights (in memory), for `why`."""
    return Shipped(last_step, val_losses(log_history).get(last_step), f"the last step ({why})", None)


def choose(ship: str, last_step: int, log_history: list[dict[str, Any]], checkpoints: Path,
           fingerprint: str) -> Shipped:
    if ship == "last":
        return last(last_step, log_history, "train.ship: last")
    last_loss = val_losses(log_history).get(last_step)
    candidates: list[tuple[float, int, Path | None]] = []
    if last_loss is not None:
        candidates.append((last_loss, last_step, None))
    for step, path in checkpoint_dirs(checkpoints):
        if step >= last_step:
            continue  # the last step itself is in memory
        problem = verify(path)
        ckpt = read_checkpoint(path) if problem is None else None
        if ckpt is None or ckpt.fingerprint != fingerprint or ckpt.val_loss is None:
            if problem is not None:
                log.warning("train: checkpoint %s not considered for shipping: %s", path, problem)
            continue
        candidates.append((float(ckpt.val_loss), step, path))
    if not candidates:
        return last(last_step, log_history, "no val loss to compare")
    loss, step, best = min(candidates, key=lambda c: (c[0], -c[1]))
    if best is None:
        return Shipped(step, loss, "the lowest val loss, at the last step", None)
    reason = (f"the lowest val loss, at step {step} ({loss:.4f}; the last step, {last_step}, "
              f"{last_loss:.4f})" if last_loss is not None else f"the lowest val loss, at step {step}")
    return Shipped(step, loss, reason, best)


def load_shipped(trainer: Any, shipped: Shipped) -> None:
    """Put the shipped checkpoint's weights in trainer.model (nothing to do for the last step's)."""
    if shipped.checkpoint is None:
        return
    if trainer.average is not None:
        trainer.average.load(shipped.checkpoint)  # its weight average, as it was validated
        trainer.average.copy_to()
    else:
        trainer._load_from_checkpoint(str(shipped.checkpoint))
