"""Typed, validated params for every stage: the one source of truth for defaults.

`params.yaml` has one section per stage. `load_params()` parses the whole file and returns frozen
pydantic models; it rejects unknown keys, wrong types, out-of-range values and combinations that a
later stage would refuse (eval's window against train.seq_len, ...) with one `ParamsError` line that
names the file, the key, what was expected and what was given. Every stage loads the whole file before
doing any work, so bad params stop the first stage and write nothing.

Types are strict, as a YAML author means them: no "1" -> 1 or 1.5 -> 1, bools only true/false; an
integer is accepted where a number is expected.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import ErrorDetails


class ParamsError(ValueError):
    """A params file or value that does not match the schema. The message names file and key."""


class Section(BaseModel):
    """A frozen, strict params section. `key` is its dotted name in params.yaml (for messages)."""

    model_config = ConfigDict(strict=True, frozen=True, extra="forbid", allow_inf_nan=False)
    key: ClassVar[str] = ""

    def __init__(self, **values: Any) -> None:
        # pydantic calls an overridden __init__ for nested sections too: the innermost error is
        # formatted once, here, and the sections around it pass it on (_error_line).
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise ParamsError(_error_line(exc, type(self), self.key)) from None

    @model_validator(mode="before")
    @classmethod
    def _empty_is_default(cls, value: Any) -> Any:
        return {} if value is None else value  # `lora:` with nothing under it: every default

    def check(self) -> None:
        """Ranges and relations between this section's keys (types are checked on construction)."""


# --------------------------------------------------------------------------------------------
# The schema. Every key a stage reads is here, with its default.
# --------------------------------------------------------------------------------------------


class NearDedupParams(Section):
    key = "data.near_dedup"

    # MinHash LSH over word shingles (datasketch), as The Stack and codeparrot do: a document whose
    # estimated Jaccard similarity to an earlier kept one is >= threshold is dropped (docs/scaling.md)
    # Off by default: on the stdlib it costs 7-11% of prepare + tokenize for 0.7% of the bytes, and
    # would move val's headline (docs/scaling.md, "Decision"); on for real corpora.
    enabled: bool = False
    threshold: float = 0.85
    shingle_size: int = 5  # words per shingle
    num_perm: int = 128  # MinHash permutations
    seed: int = 1

    def check(self) -> None:
        _require(0.0 < self.threshold <= 1.0, "data.near_dedup.threshold", "a number in (0, 1]",
                 self.threshold)
        _require(self.shingle_size >= 1, "data.near_dedup.shingle_size", "an integer >= 1", self.shingle_size)
        _require(16 <= self.num_perm <= 1024, "data.near_dedup.num_perm", "an integer in [16, 1024]",
                 self.num_perm)


class SlurmParams(Section):
    key = "data.slurm"

    # data.executor slurm: the tasks are one Slurm job array (datatrove's SlurmPipelineExecutor)
    partition: str | None = None  # required with data.executor slurm
    time: str = "04:00:00"  # each task's time limit
    cpus_per_task: int = 1  # prepare: processes per task; tokenize: encoding threads per task
    mem_per_cpu_gb: int = 2
    sbatch_args: dict[str, str | int] = Field(default_factory=dict)  # more #SBATCH lines: {account: x}
    env_command: str | None = None  # shell line a task runs first; null: activate the venv running the stage

    def check(self) -> None:
        _require(bool(self.time.strip()), "data.slurm.time", "a Slurm time limit such as 04:00:00", self.time)
        _require(self.cpus_per_task >= 1, "data.slurm.cpus_per_task", "an integer >= 1", self.cpus_per_task)
        _require(self.mem_per_cpu_gb >= 1, "data.slurm.mem_per_cpu_gb", "an integer >= 1",
                 self.mem_per_cpu_gb)


class RayParams(Section):
    key = "data.ray"

    # data.executor ray: the tasks run on a Ray cluster (datatrove's RayPipelineExecutor)
    address: str | None = None  # null: RAY_ADDRESS, else a cluster started on this machine (`ray start`)
    cpus_per_task: int = 1  # prepare: processes per task; tokenize: encoding threads per task
    mem_per_cpu_gb: int = 2

    def check(self) -> None:
        _require(self.cpus_per_task >= 1, "data.ray.cpus_per_task", "an integer >= 1", self.cpus_per_task)
        _require(self.mem_per_cpu_gb >= 1, "data.ray.mem_per_cpu_gb", "an integer >= 1", self.mem_per_cpu_gb)


class DataParams(Section):
    key = "data"

    source: Literal["stdlib", "dir", "jsonl", "hf"] = "stdlib"
    # dir: a folder; jsonl: a .jsonl, .jsonl.gz or .jsonl.zst file; hf: a folder of parquet / json(.gz)
    # / arrow shards, a `save_to_disk` folder, or a hub dataset id in the local HF cache; stdlib: unused
    path: str | None = None
    revision: str | None = None  # hf: of a hub dataset id (branch, tag or commit); never downloaded
    split: str = "train"  # hf: the dataset's split to read (all of it is split again by path hash)
    include: list[str] = Field(default_factory=lambda: ["**/*.py"])  # globs, for stdlib and dir
    text_field: str = "text"  # for jsonl and hf
    id_field: str | None = None  # jsonl, hf: the document's identity; null: `path`, then `id`, then row
    max_file_bytes: int = 1_000_000
    val_fraction: float = 0.02
    test_fraction: float = 0.02
    redact_secrets: bool = True  # keys, tokens, passwords (and PII, unless redact_pii is false); false: none
    redact_pii: bool = True  # e-mail and public IP addresses too (only while redact_secrets is true)
    drop_generated: bool = True  # reject files whose first 5 lines say they were generated
    respect_gitignore: bool = True  # dir: skip what the corpus's own .gitignore files ignore
    near_dedup: NearDedupParams = Field(default_factory=NearDedupParams)
    workers: int = 0  # processes that filter, redact and hash; 0 = all cores (outputs never depend on it)
    shard_mb: int = 64  # prepared shards close past this many MiB of text (data/prepared/{split}-NNNNN)
    engine: Literal["local", "datatrove"] = "local"  # datatrove: tasks on its executor (docs/scaling.md)
    tasks: int = 0  # datatrove: tasks the source is cut into; 0 = workers
    # where datatrove's tasks run, for prepare and tokenize alike (data.engine / tokenizer.engine):
    # local (this machine, data.workers at once), slurm (a job array) or ray (a Ray cluster)
    executor: Literal["local", "slurm", "ray"] = "local"
    slurm: SlurmParams = Field(default_factory=SlurmParams)
    ray: RayParams = Field(default_factory=RayParams)

    def check(self) -> None:
        if self.source in ("dir", "jsonl", "hf") and not self.path:
            what = {"dir": "a folder", "jsonl": "a JSONL file",
                    "hf": "a folder of shards, a save_to_disk folder or a hub dataset id"}[self.source]
            raise ParamsError(f"data.path: required when data.source is {self.source!r} ({what}), got null")
        if self.revision is not None and self.source != "hf":
            raise ParamsError(f"data.revision: applies to data.source 'hf' only, got source {self.source!r}")
        if not self.include:
            raise ParamsError("data.include: expected at least one glob, got an empty list")
        _require(self.max_file_bytes > 0, "data.max_file_bytes", "an integer > 0", self.max_file_bytes)
        for name in ("val_fraction", "test_fraction"):
            value = getattr(self, name)
            _require(0.0 <= value < 1.0, f"data.{name}", "a number in [0, 1)", value)
        total = self.val_fraction + self.test_fraction
        _require(total < 1.0, "data.val_fraction + data.test_fraction",
                 "a sum < 1 (something must be left for train)", total)
        self.near_dedup.check()
        _require(self.workers >= 0, "data.workers", "an integer >= 0 (0 = all cores)", self.workers)
        _require(self.shard_mb >= 1, "data.shard_mb", "an integer >= 1 (MiB)", self.shard_mb)
        _require(self.tasks >= 0, "data.tasks", "an integer >= 0 (0 = data.workers)", self.tasks)
        if self.executor == "slurm" and not (self.slurm.partition or "").strip():
            raise ParamsError("data.slurm.partition: required when data.executor is 'slurm' (the partition "
                              "the job array runs on), got null")
        self.slurm.check()
        self.ray.check()


class TokenizerParams(Section):
    key = "tokenizer"

    # pretrained: model.pretrained's own tokenizer; nothing is trained, the keys below are not used
    backend: Literal["sentencepiece", "hf-bpe", "pretrained"] = "hf-bpe"
    vocab_size: int = 4096  # including the 4 special tokens and the 256 byte tokens
    model_type: Literal["bpe", "unigram"] = "bpe"  # sentencepiece only (hf-bpe is always bpe)
    max_sentence_length: int = 16384  # sentencepiece: longest training "sentence" (a line), bytes
    workers: int = 0  # encoding threads; 0 = all cores (the token files never depend on it)
    # The tokenizer learns from a seeded sample of at most this many MiB of the train split (every
    # document when the split is smaller): bounded memory on any corpus. Recorded in metrics.
    sample_mb: int = 32
    seed: int = 1337  # of the sample
    engine: Literal["local", "datatrove"] = "local"  # datatrove: one task per prepared shard

    def check(self) -> None:
        # The floor is what every model holds before learning anything: 4 specials + 256 bytes
        # (+ the newline piece for sentencepiece). ids must fit the uint32 token files.
        floor = 262 if self.backend == "sentencepiece" else 261
        _require(self.backend == "pretrained" or floor <= self.vocab_size <= 2**32, "tokenizer.vocab_size",
                 f"an integer in [{floor}, 4294967296] for backend {self.backend}", self.vocab_size)
        if self.backend == "hf-bpe" and self.model_type != "bpe":
            raise ParamsError(f"tokenizer.model_type: {self.model_type!r} applies to backend "
                              f"sentencepiece only; backend {self.backend} is always 'bpe'")
        _require(10 <= self.max_sentence_length <= 2**30, "tokenizer.max_sentence_length",
                 "an integer in [10, 1073741824] (SentencePiece's limits)", self.max_sentence_length)
        _require(self.workers >= 0, "tokenizer.workers", "an integer >= 0 (0 = all cores)", self.workers)
        _require(self.sample_mb >= 1, "tokenizer.sample_mb", "an integer >= 1 (MiB)", self.sample_mb)


class LoraParams(Section):
    key = "model.lora"

    enabled: bool = False
    r: int = 8
    alpha: float = 16.0
    dropout: float = 0.05
    # module names, or all-linear (every linear layer but the output head); the default pair is
    # Llama's, and on an architecture without them means that architecture's default (models/lora.py)
    target_modules: list[str] | Literal["all-linear"] = Field(default_factory=lambda: ["q_proj", "v_proj"])
    qlora: bool = False  # 4-bit base weights through bitsandbytes (QLoRA): CUDA only

    def check(self) -> None:
        _require(self.r > 0, "model.lora.r", "an integer > 0", self.r)
        _require(self.alpha > 0, "model.lora.alpha", "a number > 0", self.alpha)
        _require(0.0 <= self.dropout < 1.0, "model.lora.dropout", "a number in [0, 1)", self.dropout)
        if self.enabled and not self.target_modules:
            raise ParamsError("model.lora.target_modules: expected at least one module name, got []")
        if self.qlora and not self.enabled:
            raise ParamsError("model.lora.qlora: true needs model.lora.enabled: true (QLoRA trains LoRA "
                              "adapters on 4-bit base weights)")


class ModelParams(Section):
    key = "model"

    name: str = "qwen3-mini"  # a registry name (codex_ml.models.registry)
    # a local Hugging Face model folder, or a hub id (org/name) in the local HF cache; overrides name
    pretrained: str | None = None
    revision: str | None = None  # of a hub id: a branch, tag or commit in the local cache
    lora: LoraParams = Field(default_factory=LoraParams)

    def check(self) -> None:
        if not self.name and not self.pretrained:
            raise ParamsError("model.name: expected a registry name (or set model.pretrained)")
        if self.revision is not None and not self.pretrained:
            raise ParamsError(f"model.revision: {self.revision!r} needs model.pretrained (a hub id), "
                              "got null")
        if self.lora.qlora and not self.pretrained:
            raise ParamsError("model.lora.qlora: true needs model.pretrained (it quantizes pretrained "
                              "weights), got model.pretrained: null")
        self.lora.check()


class TrainParams(Section):
    key = "train"

    seed: int = 1337
    seq_len: int = 128
    # the last `final_fraction` of the steps train on windows of final_seq_len tokens (a multiple of
    # seq_len), fewer of them (the same tokens per step); the model's context and the eval window are
    # then final_seq_len. 0 = seq_len throughout (training/data.py, docs/speedrun.md rows 51, 56 and 58)
    final_seq_len: int = 512
    final_fraction: float = 0.4
    batch_size: int = 16
    grad_accum: int = 1
    optimizer: Literal["adamw", "muon"] = "muon"  # muon: Muon on hidden matrices, AdamW on the rest
    lr: float = 0.024  # AdamW's lr (every parameter with adamw; embeddings, norms with muon)
    muon_lr: float = 0.03  # Muon's lr for the hidden weight matrices (train.optimizer=muon)
    min_lr_ratio: float = 0.1  # cosine decays to lr * min_lr_ratio
    warmup_steps: int = 100
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0  # 0 disables clipping
    max_steps: int = 1200  # about 7.5 minutes of qwen3-mini on 2 CPU cores
    # the saved (and validated) weights are an exponential moving average of the trained ones with
    # this decay (warmed up: training/ema.py); 0 = the last step's weights
    ema_decay: float = 0.99
    eval_every: int = 100
    eval_batches: int = 8  # val batches per periodic val loss
    checkpoint_every: int = 100
    keep_best: int = 2
    compile: bool = False
    gradient_checkpointing: bool = False  # recompute activations in backward: less memory, ~30% slower
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"  # auto: bf16 on CUDA that supports it
    threads: int = 0  # torch intra-op threads; 0 = all cores
    # Under torchrun: ddp (every process holds the whole model) or fsdp (Trainer's FSDP2: parameters,
    # gradients and optimizer state sharded across processes; docs/scaling.md). One process: ignored.
    parallel: Literal["ddp", "fsdp"] = "ddp"
    fsdp_cpu_offload: bool = False  # fsdp: sharded parameters and optimizer state kept in CPU memory
    # dense peak TFLOP/s of one process's device, for MFU (train/mfu); 0 = the table of known GPUs
    # (training/mfu.py), and no MFU where the device is not in it (a CPU). Telemetry only: not part of
    # a checkpoint's fingerprint.
    peak_tflops: float = 0.0

    @property
    def context(self) -> int:
        """Tokens per window at the end of training: the model's context and the default eval window."""
        return self.final_seq_len or self.seq_len

    @property
    def final_steps(self) -> int:
        """Optimizer steps (the last ones) on windows of final_seq_len."""
        return round(self.max_steps * self.final_fraction) if self.final_seq_len else 0

    def check(self) -> None:
        for name in ("seq_len", "batch_size", "grad_accum", "max_steps", "eval_every",
                     "eval_batches", "checkpoint_every"):
            _require(getattr(self, name) > 0, f"train.{name}", "an integer > 0", getattr(self, name))
        if self.final_seq_len:
            _require(self.final_seq_len > self.seq_len and self.final_seq_len % self.seq_len == 0,
                     "train.final_seq_len", f"0 or a multiple > 1 of train.seq_len={self.seq_len}",
                     self.final_seq_len)
            ratio = self.final_seq_len // self.seq_len
            _require(self.batch_size % ratio == 0, "train.batch_size",
                     f"a multiple of train.final_seq_len / train.seq_len = {ratio} (each final window "
                     f"takes the tokens of {ratio} windows)", self.batch_size)
        _require(0.0 <= self.final_fraction <= 1.0, "train.final_fraction", "a number in [0, 1]",
                 self.final_fraction)
        _require(self.lr > 0, "train.lr", "a number > 0", self.lr)
        _require(self.muon_lr > 0, "train.muon_lr", "a number > 0", self.muon_lr)
        _require(0.0 <= self.min_lr_ratio <= 1.0, "train.min_lr_ratio", "a number in [0, 1]",
                 self.min_lr_ratio)
        _require(0 <= self.warmup_steps < self.max_steps, "train.warmup_steps",
                 f"an integer in [0, train.max_steps={self.max_steps})", self.warmup_steps)
        _require(self.weight_decay >= 0, "train.weight_decay", "a number >= 0", self.weight_decay)
        _require(0.0 <= self.ema_decay < 1.0, "train.ema_decay", "a number in [0, 1) (0 = no average)",
                 self.ema_decay)
        for name in ("beta1", "beta2"):
            _require(0.0 <= getattr(self, name) < 1.0, f"train.{name}", "a number in [0, 1)",
                     getattr(self, name))
        _require(self.grad_clip >= 0, "train.grad_clip", "a number >= 0 (0 disables)", self.grad_clip)
        _require(self.keep_best >= 1, "train.keep_best", "an integer >= 1", self.keep_best)
        _require(self.threads >= 0, "train.threads", "an integer >= 0 (0 = all cores)", self.threads)
        if self.fsdp_cpu_offload and self.parallel != "fsdp":
            raise ParamsError("train.fsdp_cpu_offload: true needs train.parallel: fsdp, got train.parallel: "
                              f"{self.parallel}")
        # No device is near 100,000 TFLOP/s: a larger value is FLOP/s given where TFLOP/s is meant.
        _require(0 <= self.peak_tflops <= 100_000, "train.peak_tflops",
                 "a number in [0, 100000] (TFLOP/s; 0 = the table of known GPUs)", self.peak_tflops)


class HumanEvalParams(Section):
    key = "eval.humaneval"

    enabled: bool = False  # the eval stage runs HumanEval too (codex eval --humaneval: always)
    n: int = 0  # sampled completions per problem for pass@k (k = 1, 10, 100 up to n); 0 = greedy only
    temperature: float = 0.8  # of the samples (greedy pass@1 is always measured)
    top_p: float = 0.95
    max_new_tokens: int = 128  # per completion (at most half the model's window)
    timeout: float = 3.0  # wall-clock seconds per program in the sandbox (CPU seconds too)
    workers: int = 0  # programs run at once; 0 = one per core
    limit: int = 0  # the first `limit` problems only; 0 = all 164

    def check(self) -> None:
        _require(self.n >= 0, "eval.humaneval.n", "an integer >= 0 (0 = greedy only)", self.n)
        _require(self.temperature > 0, "eval.humaneval.temperature", "a number > 0", self.temperature)
        _require(0 < self.top_p <= 1, "eval.humaneval.top_p", "a number in (0, 1]", self.top_p)
        _require(self.max_new_tokens >= 1, "eval.humaneval.max_new_tokens", "an integer >= 1",
                 self.max_new_tokens)
        _require(self.timeout > 0, "eval.humaneval.timeout", "a number > 0", self.timeout)
        _require(self.workers >= 0, "eval.humaneval.workers", "an integer >= 0 (0 = all cores)", self.workers)
        _require(self.limit >= 0, "eval.humaneval.limit", "an integer >= 0 (0 = all 164)", self.limit)


class EvalParams(Section):
    key = "eval"

    bootstrap: int = 1000  # bootstrap resamples over documents for each interval; 0 = no intervals
    completion_samples: int = 200  # lines sampled per split (val, test) for line completion
    completion_max_tokens: int = 0  # greedy tokens per completion at most; 0 = min(64, window // 2)
    batch_size: int = 16  # windows (and completions) per forward pass
    window: int = 0  # tokens per sliding window; 0 = train.seq_len (capped by the model's positions)
    stride: int = 0  # sliding-window step in tokens; 0 = window // 2
    seed: int = 1337
    threads: int = 0  # torch intra-op threads; 0 = torch's default (all cores)
    humaneval: HumanEvalParams = Field(default_factory=HumanEvalParams)

    # The settings that follow the window, in one place for eval and for the checks here.
    def window_for(self, train_seq_len: int) -> int:
        """Tokens per window before the model's cap: eval.window, else train.seq_len (0: unknown)."""
        return self.window or train_seq_len

    def stride_in(self, window: int) -> int:
        return self.stride or max(1, window // 2)

    def completion_tokens_in(self, window: int) -> int:
        """At most 64 new tokens, and never more than half the window: the prompt keeps the rest."""
        return self.completion_max_tokens or min(64, window // 2)

    def check_window(self, window: int, what: str) -> None:
        """Explicit stride and completion length against a window of `window` tokens (`what` says
        where that number comes from)."""
        if self.stride:
            _require(self.stride < window, "eval.stride", f"< {what}", self.stride)
        if self.completion_samples and self.completion_max_tokens:
            _require(self.completion_max_tokens < window, "eval.completion_max_tokens", f"< {what}",
                     self.completion_max_tokens)

    def check(self) -> None:
        _require(self.bootstrap >= 0, "eval.bootstrap", "an integer >= 0", self.bootstrap)
        _require(self.completion_samples >= 0, "eval.completion_samples", "an integer >= 0",
                 self.completion_samples)
        _require(self.completion_max_tokens >= 0, "eval.completion_max_tokens",
                 "an integer >= 0 (0 = min(64, window // 2))", self.completion_max_tokens)
        _require(self.batch_size > 0, "eval.batch_size", "an integer > 0", self.batch_size)
        _require(self.window == 0 or self.window >= 2, "eval.window",
                 "0 (train.seq_len) or an integer >= 2", self.window)
        _require(self.stride >= 0, "eval.stride", "an integer >= 0 (0 = window // 2)", self.stride)
        if self.window:
            self.check_window(self.window, f"eval.window ({self.window})")
        _require(self.threads >= 0, "eval.threads", "an integer >= 0 (0 = all cores)", self.threads)
        self.humaneval.check()


class ReportParams(Section):
    key = "report"

    baseline_rev: str | None = None  # a git revision to diff metrics against; null = no diff
    completion_examples: int = 3  # line completions shown in the report (matches first)

    def check(self) -> None:
        if self.baseline_rev is not None:
            _require(bool(self.baseline_rev.strip()), "report.baseline_rev",
                     "a git revision (commit, tag, branch) or null", self.baseline_rev)
        _require(self.completion_examples >= 0, "report.completion_examples", "an integer >= 0",
                 self.completion_examples)


class Params(Section):
    data: DataParams = Field(default_factory=DataParams)
    tokenizer: TokenizerParams = Field(default_factory=TokenizerParams)
    model: ModelParams = Field(default_factory=ModelParams)
    train: TrainParams = Field(default_factory=TrainParams)
    eval: EvalParams = Field(default_factory=EvalParams)
    report: ReportParams = Field(default_factory=ReportParams)

    def eval_window(self) -> int:
        """Tokens per eval window for the pipeline's own model (its context: train.final_seq_len, or
        train.seq_len without one)."""
        return self.eval.window_for(self.train.context)

    def check(self) -> None:
        """Each section, then what stages share: everything a later stage would refuse is refused here,
        at the first stage, before any work."""
        for name in type(self).model_fields:
            getattr(self, name).check()
        train, ev = self.train, self.eval
        if self.tokenizer.backend == "pretrained" and not self.model.pretrained:
            raise ParamsError("tokenizer.backend: pretrained needs model.pretrained (whose tokenizer it is), "
                              "got model.pretrained: null")
        if train.eval_every > train.max_steps:
            raise ParamsError(f"train.eval_every: expected <= train.max_steps ({train.max_steps}), "
                              f"got {train.eval_every}")
        if train.parallel == "fsdp" and self.model.lora.enabled:
            raise ParamsError("train.parallel: fsdp does not train LoRA adapters here (they are small: use "
                              "ddp), got model.lora.enabled: true")
        context = "train.final_seq_len" if train.final_seq_len else "train.seq_len"
        if ev.window and not self.model.pretrained:
            _require(ev.window <= train.context, "eval.window", f"0 or <= {context}={train.context} "
                     f"(a model from the registry has {context} positions)", ev.window)
        if not ev.window:
            ev.check_window(self.eval_window(),
                            f"the eval window (eval.window=0 -> {context}={train.context})")


# --------------------------------------------------------------------------------------------
# Loading: YAML -> models, with one line for anything that does not fit.
# --------------------------------------------------------------------------------------------


def _require(ok: bool, key: str, expected: str, got: object) -> None:
    if not ok:
        raise ParamsError(f"{key}: expected {expected}, got {got!r}")


# What pydantic's strict type errors expect, as a YAML author reads it.
_EXPECTED = {"int_type": "an integer", "float_type": "a number", "finite_number": "a finite number",
             "bool_type": "true or false", "string_type": "a string", "list_type": "a list of strings"}


def _error_line(exc: ValidationError, model: type[BaseModel], prefix: str = "") -> str:
    """pydantic's first error as one line, `key: expected ..., got ...` with the key dotted
    (`data.include[0]`); a union's alternatives (one error each) are joined with "or"."""
    errors = exc.errors()
    if isinstance(inner := errors[0].get("ctx", {}).get("error"), ParamsError):
        return str(inner)  # a nested section's message, already complete
    key, expected, got = _explain(errors[0], model, prefix)
    if got is None:
        return f"{key}: {expected}"
    alternatives = [e for k, e, g in (_explain(err, model, prefix) for err in errors[1:]) if k == key]
    return f"{key}: expected {' or '.join([expected, *alternatives])}, got {got}"


def _explain(err: ErrorDetails, model: type[BaseModel], prefix: str) -> tuple[str, str, str | None]:
    """(dotted key, what was expected, what was given) of one pydantic error."""
    key, owner, nullable = prefix, model, False
    annotation: Any = model
    for part in err["loc"]:
        if isinstance(part, int):
            key, nullable = f"{key}[{part}]", False
        elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
            owner, key = annotation, f"{key}.{part}" if key else str(part)
            annotation = owner.model_fields[part].annotation if part in owner.model_fields else None
            nullable = type(None) in get_args(annotation)
        # else: a union member's tag (`list[str]`), not a key
    if err["type"] == "extra_forbidden":
        return key, f"unknown key; expected one of {', '.join(sorted(owner.model_fields))}", None
    ctx = err.get("ctx", {})
    if err["type"] == "model_type":
        expected = f"a mapping of {ctx['class_name']} keys"
    elif err["type"] == "literal_error":  # ctx: "'stdlib', 'dir' or 'jsonl'"
        expected = "one of " + ctx["expected"].replace("'", "").replace(" or ", ", ")
    else:
        expected = _EXPECTED.get(err["type"], err["msg"].removeprefix("Input should be "))
    return key, expected + (" or null" if nullable else ""), _show(err["input"])


def _show(value: Any) -> str:
    """A value as the YAML author wrote it: null, true, false; anything else as repr."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    return repr(value)


def parse_params(raw: Any, source: str = "params") -> Params:
    """Validate a parsed params mapping; errors are prefixed with `source` (usually the file name)."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ParamsError(f"{source}: expected a mapping of sections, got {type(raw).__name__}")
    try:
        params = Params.model_validate(raw)
        params.check()
    except ValidationError as exc:
        raise ParamsError(f"{source}: {_error_line(exc, Params)}") from None
    except ParamsError as exc:
        raise ParamsError(f"{source}: {exc}") from None
    return params


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate a params file. Raises ParamsError naming the file and key on any problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ParamsError(f"{path}: params file not found") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        raise ParamsError(_yaml_error(path, exc)) from None
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from None
    return parse_params(raw, str(path))


def _yaml_error(path: Path, exc: yaml.MarkedYAMLError) -> str:
    """`file:line:column: not valid YAML: problem (context at line:column)`, as editors read it."""

    def at(mark: Any) -> str:
        return f"{mark.line + 1}:{mark.column + 1}"

    what = exc.problem or exc.context or "unreadable"
    if exc.problem and exc.context and exc.context_mark:  # e.g. where the unclosed [ opened
        what += f" ({exc.context} at {at(exc.context_mark)})"
    mark = exc.problem_mark or exc.context_mark
    return f"{path}{':' + at(mark) if mark else ''}: not valid YAML: {what}"


def to_dict(obj: BaseModel) -> dict[str, Any]:
    """Params (or one section) as plain data, e.g. for fingerprints and reports."""
    return obj.model_dump()
