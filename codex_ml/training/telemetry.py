"""dvclive logging: per-step train loss, lr, grad norm, tokens/s and MFU; val loss; system telemetry.

Everything goes to metrics/train/ (metrics.json + plots/metrics/**.tsv) with the optimizer step as
x-axis. On resume the history saved in the checkpoint (trainer_state.json's log_history) is logged
again first, so the loss curves of a resumed run are as complete as an uninterrupted run's. Timings
(tokens/s, MFU) and system metrics are not kept in checkpoints: they would make identical runs differ.
"""

from __future__ import annotations

import logging
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm
from transformers import TrainerCallback

from codex_ml.runtime import progress_enabled
from codex_ml.training.mfu import mfu

log = logging.getLogger("codex_ml.train")

# Trainer log key -> dvclive metric name. Anything else Trainer logs (epoch, runtime, ...) is dropped.
METRICS = {
    "loss": "train/loss",
    "learning_rate": "train/learning_rate",  # not train/lr: DVC would confuse it with the param
    "grad_norm": "train/grad_norm",
    "tokens_per_s": "train/tokens_per_s",
    "mfu": "train/mfu",
    "eval_loss": "val/loss",
}


def nvml_available() -> bool:
    """Whether NVIDIA's management library loads and finds a driver (GPU telemetry possible)."""
    try:
        import pynvml

        pynvml.nvmlInit()
        pynvml.nvmlShutdown()
        return True
    except Exception:  # ImportError, or NVMLError when libnvidia-ml or the driver is missing
        return False


def open_live(metrics_dir: Path, monitor_system: bool = True) -> Any:
    """A dvclive Live writing to `metrics_dir`, sampling CPU, RAM, disk (and GPU with NVML)."""
    import dvclive.monitor_system
    from dvclive import Live

    # dvclive's monitor samples the GPU first and, without libnvidia-ml, the NVMLError aborts the whole
    # sample: no CPU, RAM or disk metrics either. Tell it there is no GPU when NVML cannot start.
    dvclive.monitor_system.GPU_AVAILABLE = dvclive.monitor_system.GPU_AVAILABLE and nvml_available()
    # dvcyaml=False: plots are declared in the project's dvc.yaml; save_dvc_exp=False: a direct
    # `python -m stages.train` must not create DVC experiments (inside `dvc exp run` DVC does).
    live = Live(dir=str(metrics_dir), dvcyaml=False, save_dvc_exp=False, report=None)
    if monitor_system:
        live.monitor_system(interval=0.05, num_samples=20)  # one aggregated sample per second
    return live


def close_live(live: Any, wait_for_system_s: float = 2.0) -> None:
    """End the dvclive run. The monitor logs one aggregated sample per second, so a run shorter than
    that would end with no system metrics at all: wait (up to `wait_for_system_s`) for the first."""
    deadline = time.monotonic() + wait_for_system_s
    while "system" not in live.summary and time.monotonic() < deadline:
        time.sleep(0.05)
    live.end()


class LiveLogger(TrainerCallback):
    """Forwards the Trainer's logs to dvclive (main process only) and measures tokens/s per step, and
    MFU when it is given the model's FLOPs per token and the peak FLOP/s of all processes together."""

    def __init__(self, live: Any, tokens_per_step: int, flops_per_token: float | None = None,
                 peak_flops: float | None = None):
        self.live = live
        self.tokens_per_step = tokens_per_step
        self.flops_per_token, self.peak_flops = flops_per_token, peak_flops
        self.tokens_per_s: float | None = None
        self.mfus: list[float] = []  # every step's MFU this run (not the replayed history)
        self._step_start = 0.0

    # Tokens/s of the optimizer step itself (forward, backward, all-reduce, update): evaluation and
    # checkpointing happen outside on_step_begin..on_step_end and do not dilute it. CUDA runs
    # asynchronously: without waiting for the device at both ends, this would time the kernel
    # launches, not the step (Trainer's own wait, loss.item() for the log, comes after on_step_end).
    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        _wait_for_device()
        self._step_start = time.perf_counter()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        _wait_for_device()
        self.tokens_per_s = self.tokens_per_step / max(time.perf_counter() - self._step_start, 1e-9)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None,
               **kwargs: Any) -> None:
        if logs and "loss" in logs and self.tokens_per_s is not None:
            # Added after Trainer copied `logs` into log_history: checkpoints keep no timings (they
            # would differ between identical runs), callbacks after this one (Progress) see it.
            logs["tokens_per_s"] = self.tokens_per_s
            if self.flops_per_token and self.peak_flops:
                logs["mfu"] = mfu(self.tokens_per_s, self.flops_per_token, self.peak_flops)
                self.mfus.append(logs["mfu"])
        if self.live is not None and state.is_world_process_zero and logs:
            self.log_entry({**logs, "step": state.global_step})

    def mfu_median(self) -> float | None:
        """The median over this run's steps: robust to the first step (which compiles, with
        train.compile) and to steps slowed by something else on the machine."""
        return statistics.median(self.mfus) if self.mfus else None

    def log_entry(self, entry: dict[str, Any]) -> None:
        values = {METRICS[k]: v for k, v in entry.items() if k in METRICS and v is not None}
        if not values:
            return
        self.live.step = int(entry["step"])
        for name, value in values.items():
            self.live.log_metric(name, float(value))
        self.live.make_summary()

    def replay(self, history: list[dict[str, Any]]) -> None:
        """Log a resumed checkpoint's history again: losses, learning rate, grad norm."""
        for entry in history:
            if "step" in entry:
                self.log_entry(entry)


def _wait_for_device() -> None:
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


class Progress(TrainerCallback):
    """A progress bar on a terminal; in CI one log line per val loss (replaces Trainer's printing)."""

    def __init__(self) -> None:
        self.bar: Any = None
        self.last: dict[str, float] = {}

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.is_world_process_zero:
            self.bar = tqdm(total=state.max_steps, initial=state.global_step, desc="train", unit="step",
                            disable=not progress_enabled(), dynamic_ncols=True)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None,
               **kwargs: Any) -> None:
        if self.bar is None or not logs:
            return
        self.last.update({k: float(v) for k, v in logs.items() if k in METRICS and v is not None})
        if "loss" in logs:
            self.bar.update(state.global_step - self.bar.n)
            self.bar.set_postfix(loss=f"{self.last['loss']:.3f}", refresh=False)
        if "eval_loss" in logs:
            text = (f"step {state.global_step}/{state.max_steps}: train loss {self.last.get('loss', 0):.4f}, "
                    f"val loss {self.last['eval_loss']:.4f}, {self.last.get('tokens_per_s', 0):.0f} tokens/s")
            if progress_enabled():
                self.bar.write(text)
            else:
                log.info("%s", text)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.bar is not None:
            self.bar.close()
