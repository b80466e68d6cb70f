"""transformers' Trainer, configured from TrainParams and extended with our checkpoint contract.

Trainer brings the loop: AdamW, warmup + cosine, clipping, accumulation, torch.compile, bf16 autocast,
DDP under torchrun, and exact resume (optimizer, scheduler and every RNG state restored, consumed
batches skipped by index). benchmarks/bench_train.py measures the stage, with the fused loss it uses on
CPU (models/head.py), against a plain torch loop of the same model (docs/stages.md has the figures).
What it does not do, and this subclass adds: Muon for the hidden matrices (train.optimizer=muon,
training/optim.py), a fingerprint and val loss in each checkpoint, a sha256 manifest written last, and
retention of the best `keep_best` by val loss plus the newest.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from transformers import Trainer, TrainerCallback, TrainingArguments

from codex_ml.io import write_json
from codex_ml.params import TrainParams
from codex_ml.training.checkpoint import META, retain, write_manifest
from codex_ml.training.ema import WeightAverage
from codex_ml.training.optim import muon_adamw


def use_bf16(params: TrainParams) -> bool:
    """bf16 where the hardware does it well: CUDA with native bf16. A CPU without native bf16 matmuls
    (AMX, AVX-512 BF16) emulates them, far slower than fp32, so `auto` means fp32 on CPU."""
    if params.dtype == "auto":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return params.dtype == "bfloat16"


def fused_adamw() -> bool:
    """AdamW's fused kernel (all parameters in one launch instead of several per tensor) on CUDA, in
    every profile: the same update up to float rounding, and CUDA training is not bit-reproducible
    anyway. Not a param: there is no reason to turn it off. CPUs keep the default implementation, so
    CPU runs stay byte-identical to those before it."""
    return torch.cuda.is_available()


def fsdp(params: TrainParams) -> bool:
    """train.parallel: fsdp applies under torchrun (any number of processes, 1 included: CPU offload
    and bf16 on one GPU); a plain `python -m stages.train` is one process without torch.distributed."""
    return params.parallel == "fsdp" and "LOCAL_RANK" in os.environ


def training_arguments(params: TrainParams, output_dir: Path, processes: int, quiet: bool) -> Any:
    cuda = torch.cuda.is_available()
    return TrainingArguments(
        output_dir=str(output_dir),
        max_steps=params.max_steps,
        # train.batch_size is the global batch: split across processes, so a torchrun run takes the
        # same optimizer steps on the same windows as one process.
        per_device_train_batch_size=params.batch_size // processes,
        per_device_eval_batch_size=params.batch_size // processes,
        gradient_accumulation_steps=params.grad_accum,
        optim="adamw_torch_fused" if fused_adamw() else "adamw_torch",
        learning_rate=params.lr,
        weight_decay=params.weight_decay,
        adam_beta1=params.beta1,
        adam_beta2=params.beta2,
        # 0 disables clipping; the norm is still computed (and logged) with an infinite bound.
        max_grad_norm=params.grad_clip if params.grad_clip > 0 else float("inf"),
        lr_scheduler_type="cosine_with_min_lr",
        lr_scheduler_kwargs={"min_lr_rate": params.min_lr_ratio},
        warmup_steps=params.warmup_steps,
        train_sampling_strategy="sequential",  # TrainWindows is already shuffled; index = position
        logging_strategy="steps",
        logging_steps=1,
        eval_strategy="steps",
        eval_steps=params.eval_every,
        prediction_loss_only=True,  # never gather logits (batch x seq x vocab) just for a loss
        save_strategy="steps",
        save_steps=params.checkpoint_every,
        save_total_limit=None,  # retention is ours: best keep_best by val loss + newest
        seed=params.seed,
        data_seed=params.seed,
        use_cpu=not cuda,
        bf16=use_bf16(params),
        torch_compile=params.compile,
        # transformers' name for train.gradient_checkpointing (its old name is a deprecated alias);
        # non-reentrant: correct when the inputs need no grad (frozen embeddings under LoRA)
        activation_checkpointing=params.gradient_checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False} if params.gradient_checkpointing else None,
        ddp_backend="gloo" if processes > 1 and not cuda else None,  # NCCL is the default on GPUs
        # FSDP2 through accelerate: each decoder layer a shard unit (the model's _no_split_modules);
        # checkpoints hold the full state dict, so they resume on any number of processes' shards.
        fsdp="full_shard" if fsdp(params) else None,  # (FSDP2: reshard after forward)
        fsdp_config={"version": 2, "state_dict_type": "FULL_STATE_DICT",
                     "cpu_offload": params.fsdp_cpu_offload} if fsdp(params) else None,
        # Every item key reaches the collator: TrainWindows' "join" (how many pieces make one final
        # window) is no model input, and Trainer would drop it before join_windows could read it.
        remove_unused_columns=False,
        dataloader_num_workers=0,  # slicing a memmap is cheaper than a worker round trip
        dataloader_pin_memory=cuda,
        report_to="none",  # telemetry goes through dvclive (LiveLogger); nothing phones home
        disable_tqdm=quiet,
        log_level="warning",
    )


class EvalOnSave(TrainerCallback):
    """Every checkpoint is evaluated (its val loss ranks it for retention), as is the last step."""

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if control.should_save or state.global_step >= state.max_steps:
            control.should_evaluate = True


def barrier() -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()


class CodexTrainer(Trainer):
    def __init__(self, *args: Any, checkpoint_meta: dict[str, Any], keep_best: int,
                 muon_lr: float | None = None, **kwargs: Any):
        """`muon_lr`: train hidden weight matrices with Muon at this lr (training/optim.py);
        None: AdamW for everything (TrainingArguments' adamw_torch)."""
        super().__init__(*args, **kwargs)
        self.checkpoint_meta = checkpoint_meta
        self.keep_best = keep_best
        self.muon_lr = muon_lr
        # train.ema_decay's average (training/ema.py), set by training/stage.py once the model is on its
        # device: evaluation (and so checkpoint ranking) scores it, and every checkpoint carries it.
        self.average: WeightAverage | None = None

    def evaluate(self, *args: Any, **kwargs: Any) -> Any:
        if self.average is None:
            return super().evaluate(*args, **kwargs)
        with self.average.applied():
            return super().evaluate(*args, **kwargs)

    def create_optimizer(self, model: Any = None) -> Any:
        if self.muon_lr is None or self.optimizer is not None:
            return super().create_optimizer(model)
        opt_model = self.model if model is None else model
        assert opt_model is not None
        args = self.args
        decay = set(self.get_decay_parameter_names(opt_model))
        self.optimizer = muon_adamw(opt_model.named_parameters(), decay, lr=args.learning_rate,
                                    muon_lr=self.muon_lr, weight_decay=args.weight_decay,
                                    betas=(args.adam_beta1, args.adam_beta2), fused=fused_adamw())
        return self.optimizer

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        # Timings (eval_runtime, *_per_second) would make trainer_state.json, and so every checkpoint,
        # differ between identical runs. They are dropped here; tokens/s goes to dvclive directly.
        super().log({k: v for k, v in logs.items() if not k.endswith(("_runtime", "_per_second"))},
                    start_time)

    def _issue_warnings_after_load(self, load_result: Any) -> None:
        # Tied embeddings are saved once, so lm_head.weight is always "missing" on resume though it is
        # restored through the tie; the warning would only alarm. Anything else missing still warns.
        tied = set(getattr(self.accelerator.unwrap_model(self.model), "_tied_weights_keys", None) or ())
        missing = [k for k in load_result.missing_keys if k not in tied]
        super()._issue_warnings_after_load(load_result._replace(missing_keys=missing))

    def _save_checkpoint(self, model: Any, trial: Any) -> None:
        super()._save_checkpoint(model, trial)
        step = self.state.global_step
        path = Path(str(self.args.output_dir)) / f"checkpoint-{step}"
        barrier()  # every process has written its rng_state_<rank>.pth
        if self.args.process_index == 0:
            # A pickle of TrainingArguments: never read on resume, and nothing should unpickle it.
            (path / "training_args.bin").unlink(missing_ok=True)
            val = [e["eval_loss"] for e in self.state.log_history
                   if e.get("step") == step and "eval_loss" in e]
            sampler = self.checkpoint_meta["sampler"]
            write_json(path / META, {
                **self.checkpoint_meta,
                "step": step,
                "val_loss": val[-1] if val else None,
                # The windows consumed so far: TrainWindows index where the next step starts.
                "sampler": {**sampler, "position": step * sampler["windows_per_step"]},
            })
            if self.average is not None:
                self.average.save(path)
            write_manifest(path)  # last: a checkpoint without a verifying manifest is never resumed
            retain(Path(str(self.args.output_dir)), self.keep_best)
        barrier()
