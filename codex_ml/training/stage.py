"""The train stage's recipe: tokens + tokenizer -> a trained model, checkpoints and telemetry.

`run_training` reads top to bottom in these steps, one section each:

1. check inputs and params (nothing is written before this succeeds), and plan the steps
   (train.max_steps, train.max_epochs: budget.py)
2. build the model (registry or pretrained), wrap it in LoRA if asked; on CPU fuse its loss into the head
3. fingerprint the run; resume the newest verifying checkpoint of the same fingerprint, and say how many
   passes over the train tokens the steps make
4. train with CodexTrainer, logging to dvclive (MFU too, where the device's peak is known: mfu.py),
   stopping early on val if train.early_stopping_patience says so (early_stopping.py)
5. write models/model/ (a plain HF folder, LoRA merged, tokenizer included), atomically: the
   checkpoint with the lowest val loss or the last step's (train.ship: ship.py), as its weights'
   moving average (train.ema_decay, training/ema.py) where there is one
6. log the run's summary to metrics/train/metrics.json

The same code runs as one process or under `torchrun --nproc_per_node N -m stages.train`: process 0
writes checkpoints, metrics and the model; the others only train.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import PrinterCallback, ProgressCallback, TrainerCallback
from transformers.utils import logging as hf_logging

import codex_ml.fim
import codex_ml.models
import codex_ml.training
from codex_ml import kernels
from codex_ml.base_model import PretrainedBase, base_of
from codex_ml.models import Vocab, apply_lora, build_model, count_parameters, save_model_folder
from codex_ml.models.head import fuse_loss
from codex_ml.models.registry import quantization_config
from codex_ml.params import ModelParams, Params, TrainParams, to_dict
from codex_ml.paths import CHECKPOINTS, TOKENIZER, TOKENS, TRAIN_LIVE, TRAINED
from codex_ml.runtime import StageError, progress_enabled
from codex_ml.training import budget as budgets
from codex_ml.training import ship
from codex_ml.training.budget import Budget
from codex_ml.training.checkpoint import (
    FORMAT,
    ResumeChoice,
    choose_resume,
    code_fingerprint,
    fingerprint_of,
    report_and_clean,
)
from codex_ml.training.early_stopping import EarlyStopping
from codex_ml.training.ema import AverageWeights, WeightAverage
from codex_ml.training.fim import FimTokenizer, check_fim, fim_windows
from codex_ml.training.inputs import TokenData, check_made_by, load_token_data, unigram_entropy
from codex_ml.training.mfu import flops_per_token, resolve_peak
from codex_ml.training.telemetry import LiveLogger, Progress, close_live, open_live
from codex_ml.training.trainer import CodexTrainer, EvalOnSave, barrier, fsdp, training_arguments, use_bf16
from codex_ml.training.windows import EvalWindows, TrainWindows, join_windows

log = logging.getLogger("codex_ml.train")

# The FSDP keys and their defaults: they count in a run's fingerprint only when set otherwise.
FSDP_KEYS = {key: TrainParams.model_fields[key].default for key in ("parallel", "fsdp_cpu_offload")}


@dataclass(frozen=True)
class TrainPaths:
    """What train reads and writes; the pipeline's layout (codex_ml/paths.py) by default."""

    tokens: Path = TOKENS
    tokenizer: Path = TOKENIZER
    model: Path = TRAINED
    checkpoints: Path = CHECKPOINTS
    metrics: Path = TRAIN_LIVE

    @classmethod
    def under(cls, root: Path) -> TrainPaths:
        """The pipeline's layout inside `root` (a workspace that is not the working folder)."""
        return cls(*(root / path for path in astuple(cls())))


def configure_torch(threads: int) -> None:
    if threads:
        torch.set_num_threads(threads)
    if not torch.cuda.is_available():
        # Same inputs, same bytes out. On CPU this costs nothing measurable; on CUDA it would force
        # slower kernels (and a cuBLAS workspace setting), so GPUs keep the fast nondeterministic ones.
        torch.use_deterministic_algorithms(True)
    else:
        # TF32 tensor cores for float32 matmuls (8-10x the fp32 rate on Ampere and later): what stays
        # in float32 under bf16 autocast, and everything in a float32 run. CPUs are unaffected.
        torch.set_float32_matmul_precision("high")


def fingerprint_inputs(params: Params, data_fingerprint: str, processes: int) -> dict[str, Any]:
    """What a checkpoint must share with this run to be resumed by it."""
    import peft
    import transformers

    packages = [Path(str(p.__file__)).parent for p in (codex_ml.training, codex_ml.models, codex_ml.fim)]
    # train.peak_tflops only labels telemetry and train.ship picks among the checkpoints after training:
    # changing either must not throw a trained run's checkpoints away. The FSDP keys count only when set:
    # a DDP run's checkpoints keep the fingerprint they had before. train.fim makes the windows: it counts.
    train = {k: v for k, v in to_dict(params.train).items()
             if k not in ("peak_tflops", "ship") and not (k in FSDP_KEYS and v == FSDP_KEYS[k])}
    return {
        "format": FORMAT,
        "model": to_dict(params.model),
        "train": train,
        "data": data_fingerprint,
        "code": code_fingerprint(packages),
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "peft": peft.__version__},
        "processes": processes,
    }


def run_training(params: Params, paths: TrainPaths = TrainPaths(),
                 callbacks: Sequence[TrainerCallback] = ()) -> dict[str, Any]:
    """Train as `params` say; returns the final summary (also in metrics/train/metrics.json)."""
    started = time.perf_counter()

    # --- 1. inputs and params, checked before anything is written; the steps planned ---------------
    processes = int(os.environ.get("WORLD_SIZE", "1"))
    base = check_setup(params, paths, processes)
    fim_tokenizer = check_fim(params.train.fim, paths.tokenizer, base)  # sentinels, before any reading
    data = load_token_data(paths.tokens)
    check_made_by(data, paths.tokenizer, base)
    budget = budgets.plan(params.train, len(data.train))
    tp = budgets.scaled(params.train, budget)  # as this run takes them: max_steps and the intervals

    # --- 2. the model -------------------------------------------------------------------------
    configure_torch(tp.threads)
    log.info("train: CPU kernels %s", kernels.check(tp.kernels, "train.kernels"))
    model = make_model(params.model, tp, data)
    parameters = (count_parameters(model), count_parameters(model, trainable_only=True))
    windows = make_windows(data, tp, fim_tokenizer)  # (train, val); too few tokens is refused here

    # --- 3. the run's fingerprint, and the checkpoint it resumes --------------------------------
    inputs = fingerprint_inputs(params, data.fingerprint(), processes)
    fingerprint = fingerprint_of(inputs)
    choice = choose_resume(paths.checkpoints, fingerprint)  # every process reads; process 0 cleans
    hf_logging.set_verbosity_warning()
    hf_logging.disable_progress_bar()  # "Writing model shards" bars at every checkpoint
    args = training_arguments(tp, paths.checkpoints, processes, quiet=not progress_enabled())
    main = args.process_index == 0  # TrainingArguments has started torch.distributed under torchrun
    barrier()  # every process has chosen before process 0 deletes anything
    if main:
        report_and_clean(choice, inputs)
        log.log(*budgets.describe(params.train, budget))
    barrier()

    # --- 4. training ----------------------------------------------------------------------------
    live = open_live(paths.metrics) if main else None
    logger, peak = live_logger(live, model, tp, processes, choice)
    checkpoint_meta = {"format": FORMAT, "fingerprint": fingerprint, "fingerprint_inputs": inputs,
                       "sampler": {"seed": tp.seed, "windows_per_step": tp.batch_size * tp.grad_accum}}
    trainer = make_trainer(model, args, windows, tp, [logger, EvalOnSave(), Progress(), *callbacks],
                           checkpoint_meta)
    if tp.ema_decay:
        average_weights(trainer, tp.ema_decay, choice)
    trainer.train(resume_from_checkpoint=str(choice.resume.path) if choice.resume else None)
    if fsdp(tp):
        log_fsdp_shards(trainer, args.process_index, processes)

    # --- 5. models/model: the shipped weights -------------------------------------------------------
    if trainer.average is not None:
        trainer.average.copy_to()  # the saved model is the average
    # FSDP: every process takes part in gathering the shards into one full state dict (process 0's)
    full = trainer.accelerator.get_state_dict(trainer.model) if fsdp(tp) else None
    summary: dict[str, Any] = {}
    if main:
        shipped = ship_model(trainer, tp, paths, fingerprint, data, base, full)

        # --- 6. the run's summary, in metrics/train/metrics.json ----------------------------------
        summary = summary_of(trainer, tp, data, budget, shipped, parameters, processes, choice, started)
        if (median := logger.mfu_median()) is not None and peak:
            # not train/peak_tflops: DVC would confuse the metric with the param of that name
            summary |= {"train/mfu_median": median, "train/mfu_peak_tflops": peak / 1e12}
        assert live is not None
        for name, value in summary.items():
            live.log_metric(name, value, plot=False)
        close_live(live)
        log.info("train: %d steps, val loss %.4f (unigram entropy %.4f nats), %s parameters -> %s",
                 summary["train/steps"], summary["val/shipped_loss"], summary["data/unigram_entropy"],
                 summary["model/parameters"], paths.model)
    barrier()
    return summary


def check_setup(params: Params, paths: TrainPaths, processes: int) -> PretrainedBase | None:
    """What can be refused before any file is read: the device against train.parallel, the processes
    against the batch, QLoRA's needs, model.pretrained, the tokenizer folder. Returns the resolved base."""
    if params.train.compile and params.train.kernels == "avx2" and not torch.cuda.is_available():
        # inductor's CPU code under ATen's AVX2 kernels indexes out of bounds (an IndexError in the
        # first compiled step), so compiling on a CPU runs on the machine's own kernels.
        raise StageError("train.compile: torch.compile on a CPU fails under the AVX2-pinned kernels "
                         "(train.kernels: avx2); set train.kernels: native to compile on a CPU (the model "
                         "bytes then depend on the CPU), or train.compile: false")
    if fsdp(params.train) and not torch.cuda.is_available():
        # accelerate turns FSDP on for accelerator devices only: on CPU, Trainer would run DDP instead.
        raise StageError("train.parallel: fsdp needs CUDA devices (accelerate runs FSDP on GPUs only; on "
                         "CPU it would silently be DDP), got no CUDA device: set train.parallel: ddp")
    params.train.check_processes(processes)
    quantization_config(params.model)  # QLoRA without CUDA or bitsandbytes: one error before reading
    base = base_of(params.model)
    if not (paths.tokenizer / "tokenizer_config.json").is_file():
        raise StageError(f"{paths.tokenizer} holds no Hugging Face tokenizer: run the tokenize stage first")
    return base


def make_model(mp: ModelParams, tp: TrainParams, data: TokenData) -> torch.nn.Module:
    """The model of model.*, seeded by train.seed, LoRA-wrapped if asked; on CPU its loss fused into
    the output layer (models/head.py; benchmarks/bench_head.py measures it on CPU and CUDA: CUDA runs
    keep transformers' loss)."""
    model = build_model(mp, Vocab.from_meta(data.meta), tp.context, tp.seed)
    if mp.lora.enabled:
        model = apply_lora(model, mp.lora, tp.gradient_checkpointing)
    fused = not torch.cuda.is_available() and fuse_loss(model)
    log.info("train: loss %s", "fused into the output layer" if fused else "transformers' own")
    return model


def make_windows(data: TokenData, tp: TrainParams, fim_tokenizer: FimTokenizer | None = None
                 ) -> tuple[TrainWindows, EvalWindows]:
    """The train windows (seeded, resumable, through train.fim's transform: windows.py) and the fixed,
    left-to-right val windows."""
    windows_per_step = tp.batch_size * tp.grad_accum
    fim, offsets = (fim_windows(tp.fim, tp.seed, fim_tokenizer, data.dir, data.meta, data.train)
                    if fim_tokenizer is not None else (None, None))
    train_set = TrainWindows(data.train, tp.seq_len, tp.max_steps * windows_per_step, windows_per_step,
                             tp.seed, final_seq_len=tp.final_seq_len,
                             final_from=(tp.max_steps - tp.final_steps) * windows_per_step, fim=fim,
                             offsets=offsets)
    return train_set, EvalWindows(data.val, tp.seq_len, tp.eval_batches * tp.batch_size)


def make_trainer(model: torch.nn.Module, args: Any, windows: tuple[TrainWindows, EvalWindows],
                 tp: TrainParams, callbacks: list[TrainerCallback],
                 checkpoint_meta: dict[str, Any]) -> CodexTrainer:
    """CodexTrainer on the windows, with `callbacks` and early stopping when train.* asks for it."""
    stopping = [EarlyStopping(tp.early_stopping_patience)] if tp.early_stopping_patience else []
    trainer = CodexTrainer(
        model=model, args=args, train_dataset=windows[0], eval_dataset=windows[1], data_collator=join_windows,
        callbacks=[*callbacks, *stopping], checkpoint_meta=checkpoint_meta,
        keep_best=tp.keep_best, muon_lr=tp.muon_lr if tp.optimizer == "muon" else None)
    for noisy in (PrinterCallback, ProgressCallback):  # they print every step's logs; Progress is quiet
        trainer.remove_callback(noisy)
    return trainer


def live_logger(live: Any, model: torch.nn.Module, tp: TrainParams, processes: int,
                choice: ResumeChoice) -> tuple[LiveLogger, float | None]:
    """The dvclive logger (process 0's; the others log nothing), with MFU against every process's device
    together (tokens/s counts the global batch) where the device's peak is known; and that peak, of one
    process's device (None: unknown)."""
    peak, about_peak = resolve_peak(tp.peak_tflops, use_bf16(tp))
    fpt = flops_per_token(model, tp.seq_len)
    if live is not None and peak:
        log.info("train: MFU against %s%s; %.4g FLOPs per token", about_peak,
                 f" x {processes} processes" if processes > 1 else "", fpt)
    elif live is not None:
        log.info("train: MFU not logged: %s", about_peak)
    logger = LiveLogger(live, tokens_per_step=tp.batch_size * tp.grad_accum * tp.seq_len,
                        flops_per_token=fpt, peak_flops=peak * processes if peak else None)
    if live is not None and choice.resume is not None:
        state = json.loads((choice.resume.path / "trainer_state.json").read_text(encoding="utf-8"))
        logger.replay(state["log_history"])
    return logger, peak


def average_weights(trainer: CodexTrainer, decay: float, choice: ResumeChoice) -> None:
    """train.ema_decay: a moving average of the weights, made now that the Trainer has put the model on
    its device, restored from the checkpoint resumed."""
    assert trainer.model is not None
    trainer.average = WeightAverage(trainer.model, decay)
    if choice.resume is not None:
        trainer.average.load(choice.resume.path)
    trainer.add_callback(AverageWeights(trainer.average))


def log_fsdp_shards(trainer: CodexTrainer, process: int, processes: int) -> None:
    assert trainer.model is not None
    weights = list(trainer.model.parameters())  # DTensors: each process holds its shard
    held = sum(p.to_local().numel() if hasattr(p, "to_local") else p.numel() for p in weights)
    log.info("train: FSDP: process %d of %d held %d of the model's %d parameter values",
             process, processes, held, sum(p.numel() for p in weights))


def ship_model(trainer: CodexTrainer, tp: TrainParams, paths: TrainPaths, fingerprint: str, data: TokenData,
               base: PretrainedBase | None, full: dict[str, Any] | None) -> ship.Shipped:
    """Write models/model from the weights train.ship picks (process 0)."""
    last_step = trainer.state.global_step
    if full is None:
        shipped = ship.choose(tp.ship, last_step, trainer.state.log_history, paths.checkpoints, fingerprint)
        ship.load_shipped(trainer, shipped)
    else:  # what is saved is `full`, gathered from every process's shard of the last step
        shipped = ship.last(last_step, trainer.state.log_history,
                            "train.parallel: fsdp saves the weights gathered at the last step")
    log.info("train: models/model is step %d: %s", shipped.step, shipped.reason)
    save_model_folder(trainer.accelerator.unwrap_model(trainer.model), paths.tokenizer, paths.model,
                      base=data.meta.base_model, base_dir=base.folder if base else None, state_dict=full)
    return shipped


def summary_of(trainer: CodexTrainer, tp: TrainParams, data: TokenData, budget: Budget, shipped: ship.Shipped,
               parameters: tuple[int, int], processes: int, choice: ResumeChoice,
               started: float) -> dict[str, Any]:
    """metrics/train/metrics.json's numbers (besides the ones dvclive logs as it goes)."""
    last_step = trainer.state.global_step
    vals = [e["eval_loss"] for e in trainer.state.log_history if "eval_loss" in e]
    return {
        "model/parameters": parameters[0],
        "model/trainable_parameters": parameters[1],
        "data/train_tokens": len(data.train),
        "data/val_tokens": len(data.val),
        "data/unigram_entropy": unigram_entropy(data.train, data.meta.vocab_size),
        "train/tokens_seen": last_step * tp.batch_size * tp.grad_accum * tp.seq_len,
        "train/planned_steps": budget.steps,
        "train/steps": last_step,  # fewer than planned when stopped early on val
        "train/passes": budget.passes_at(last_step),  # over the train tokens
        "train/shipped_step": shipped.step,
        "train/shipped": shipped.reason,
        "train/processes": processes,
        "train/resumed_from_step": choice.resume.step if choice.resume else 0,
        "train/wall_time_s": time.perf_counter() - started,
        "val/best_loss": min(vals) if vals else float("nan"),
        "val/final_loss": vals[-1] if vals else float("nan"),
        "val/shipped_loss": shipped.val_loss if shipped.val_loss is not None else float("nan"),
    }
