"""train's params: model.* (what is trained) and train.* (how)."""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import Field, model_validator

from codex_ml.params.section import (
    AtLeast1,
    Cores,
    Count,
    Fraction,
    Hint,
    ParamsError,
    Positive,
    PositiveNumber,
    Section,
    Share,
    fail,
    raise_all,
    setting,
)


class LoraParams(Section):
    key = "model.lora"

    enabled: bool = setting(False, "train LoRA adapters (peft); models/model is always merged")
    r: Positive = setting(8, "adapter rank")
    alpha: PositiveNumber = setting(16.0, "adapter scale (the update is scaled by alpha / r)")
    dropout: Fraction = setting(0.05, "dropout on the adapters' input")
    target_modules: list[str] | Literal["all-linear"] = setting(
        lambda: ["q_proj", "v_proj"], "module names, or all-linear (every linear layer but the head); "
                                      "without these modules: the architecture's default")
    qlora: bool = setting(False, "4-bit base weights through bitsandbytes (QLoRA): CUDA only")

    @model_validator(mode="after")
    def _relations(self) -> Self:
        problems = []
        if self.enabled and not self.target_modules:
            problems.append(ParamsError("model.lora.target_modules: expected at least one module name, "
                                        "got []"))
        if self.qlora and not self.enabled:
            problems.append(ParamsError("model.lora.qlora: true needs model.lora.enabled: true (QLoRA trains "
                                        "LoRA adapters on 4-bit base weights)"))
        raise_all(problems)
        return self


class ModelParams(Section):
    key = "model"

    name: str = setting("qwen3-mini", "a registry model (the README's model table)")
    pretrained: str | None = setting(None, "a local Hugging Face model folder, or a hub id in the local HF "
                                       "cache; overrides name")
    revision: str | None = setting(None, "of a hub id: a branch, tag or commit in the local cache")
    lora: LoraParams = setting(LoraParams, "LoRA adapters")

    @model_validator(mode="after")
    def _relations(self) -> Self:
        problems = []
        if not self.name and not self.pretrained:
            problems.append(ParamsError("model.name: expected a registry name (or set model.pretrained)"))
        if self.revision is not None and not self.pretrained:
            problems.append(ParamsError(f"model.revision: {self.revision!r} needs model.pretrained (a hub "
                                        "id), got null"))
        if self.lora.qlora and not self.pretrained:
            problems.append(ParamsError("model.lora.qlora: true needs model.pretrained (it quantizes "
                                        "pretrained weights), got model.pretrained: null"))
        raise_all(problems)
        return self


class FimParams(Section):
    key = "train.fim"

    rate: Share = setting(0.5, "share of training examples cut at two random characters into prefix, middle "
                               "and suffix and reordered with the FIM sentinels (docs/fim.md); 0 = left to "
                               "right only")
    spm_rate: Share = setting(0.5, "share of those examples in suffix-prefix-middle order (the rest "
                                   "prefix-suffix-middle)")
    level: Literal["context", "document"] = setting(
        "context", "context: each document piece of every training window is an example, drawn afresh each "
                   "time a window is read; document: each document once per run")


class TrainParams(Section):
    key = "train"

    seed: int = setting(1337, "seed of initialisation and of the order of training windows")
    seq_len: Positive = setting(128, "tokens per training window")
    final_seq_len: int = setting(512, "the last final_fraction of the steps train on windows this long (a "
                                  "multiple of seq_len; the model's context); 0 = seq_len throughout")
    final_fraction: Share = setting(0.4, "share of the steps on final_seq_len windows")
    batch_size: Positive = setting(16, "windows per micro-step, global (split across torchrun processes)")
    grad_accum: Positive = setting(1, "micro-steps per optimizer step")
    optimizer: Literal["adamw", "muon"] = setting("muon", "muon: Muon on hidden matrices, AdamW on the rest")
    lr: PositiveNumber = setting(0.024, "AdamW's lr (with muon: embeddings and norms only)")
    muon_lr: PositiveNumber = setting(0.03, "Muon's lr for the hidden weight matrices")
    min_lr_ratio: Share = setting(0.1, "the cosine schedule decays to lr * min_lr_ratio")
    warmup_steps: Count = setting(100, "linear warmup steps (< max_steps)")
    weight_decay: Annotated[float, Field(ge=0)] = setting(0.1, "decoupled weight decay")
    beta1: Fraction = setting(0.9, "AdamW's beta1")
    beta2: Fraction = setting(0.95, "AdamW's beta2")
    grad_clip: Annotated[float, Field(ge=0), Hint("0 disables")] = setting(1.0, "gradient norm clip")
    max_steps: Positive = setting(1200, "optimizer steps")
    max_epochs: PositiveNumber | None = setting(
        None, "passes over the train tokens at most: training ends at whichever of max_steps and max_epochs "
              "comes first, and a shorter run scales warmup, eval and checkpoint steps with it; null: steps")
    ship: Literal["best", "last"] = setting(
        "best", "models/model: the checkpoint (its average) with the lowest val loss, or the last step")
    early_stopping_patience: Annotated[int, Field(ge=0), Hint("0 = never stop early")] = setting(
        0, "stop after this many val losses in a row without a new best")
    ema_decay: Annotated[float, Field(ge=0, lt=1), Hint("0 = no average")] = setting(
        0.99, "the saved (and validated) weights are a moving average with this decay; 0 = the last step's")
    eval_every: Positive = setting(100, "val loss every N steps (and at every checkpoint and the last step)")
    eval_batches: Positive = setting(8, "val batches per val loss")
    checkpoint_every: Positive = setting(100, "steps between checkpoints")
    keep_best: AtLeast1 = setting(2, "checkpoints kept: the best keep_best by val loss, and the newest")
    compile: bool = setting(False, "torch.compile (the first step is slower)")
    gradient_checkpointing: bool = setting(
        False, "recompute activations in backward: less memory, ~30% slower")
    dtype: Literal["auto", "float32", "bfloat16"] = setting(
        "auto", "auto: bf16 on CUDA that supports it, else fp32")
    threads: Cores = setting(0, "torch intra-op threads")
    kernels: Literal["avx2", "native"] = setting(
        "avx2", "CPU kernels: avx2 caps every library at AVX2 (the same model bytes on any Intel x86-64 CPU "
                "and thread count: docs/reproducibility.md); native: each library's fastest for this CPU")
    parallel: Literal["ddp", "fsdp"] = setting(
        "ddp", "under torchrun: ddp (each process holds the whole model) or fsdp (Trainer FSDP2, CUDA only: "
               "parameters, gradients and optimizer state sharded); one process: ignored")
    fsdp_cpu_offload: bool = setting(False, "fsdp: sharded parameters and optimizer state kept in CPU memory")
    # No device is near 100,000 TFLOP/s: a larger value is FLOP/s given where TFLOP/s is meant.
    peak_tflops: Annotated[float, Field(ge=0, le=100_000), Hint("TFLOP/s; 0 = the table of known GPUs")] = (
        setting(
            0.0, "the device's dense peak for MFU (train/mfu); telemetry only"))
    fim: FimParams = setting(FimParams, "fill in the middle: made where windows are cut, so a change "
                                        "retrains without re-tokenizing")

    @property
    def context(self) -> int:
        """Tokens per window at the end of training: the model's context and the default eval window."""
        return self.final_seq_len or self.seq_len

    @property
    def final_steps(self) -> int:
        """Optimizer steps (the last ones) on windows of final_seq_len."""
        return round(self.max_steps * self.final_fraction) if self.final_seq_len else 0

    @model_validator(mode="after")
    def _relations(self) -> Self:
        problems = []
        if self.final_seq_len and not (self.final_seq_len > self.seq_len
                                       and self.final_seq_len % self.seq_len == 0):
            problems.append(fail("train.final_seq_len",
                                 f"0 or a multiple > 1 of train.seq_len={self.seq_len}", self.final_seq_len))
        elif self.final_seq_len and self.batch_size % (ratio := self.final_seq_len // self.seq_len):
            problems.append(fail("train.batch_size", f"a multiple of train.final_seq_len / train.seq_len = "
                                 f"{ratio} (each final window takes the tokens of {ratio} windows)",
                                 self.batch_size))
        if self.warmup_steps >= self.max_steps:
            problems.append(fail("train.warmup_steps", f"an integer in [0, train.max_steps={self.max_steps})",
                                 self.warmup_steps))
        if self.eval_every > self.max_steps:
            problems.append(fail("train.eval_every", f"<= train.max_steps ({self.max_steps})",
                                 self.eval_every))
        if self.fsdp_cpu_offload and self.parallel != "fsdp":
            problems.append(ParamsError("train.fsdp_cpu_offload: true needs train.parallel: fsdp, got "
                                        f"train.parallel: {self.parallel}"))
        raise_all(problems)
        return self

    def check_processes(self, processes: int) -> None:
        """The global batch against the number of torchrun processes that share it."""
        if self.batch_size % processes:
            raise ParamsError(f"train.batch_size: expected a multiple of the {processes} processes, got "
                              f"{self.batch_size} (it is the global batch, split across processes)")
        if self.final_seq_len and (self.batch_size // processes) % (self.final_seq_len // self.seq_len):
            raise ParamsError(f"train.batch_size: expected each of the {processes} processes' "
                              f"{self.batch_size // processes} windows per micro-step to split into windows "
                              f"of train.final_seq_len={self.final_seq_len} tokens, got {self.batch_size}")
