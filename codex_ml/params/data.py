"""prepare's and tokenize's params: data.* (the source, filters, splits, where tasks run) and
tokenizer.*."""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import Field, field_validator, model_validator

from codex_ml.params.section import (
    AtLeast1,
    Cores,
    Count,
    Fraction,
    Hint,
    Mib,
    ParamsError,
    Positive,
    PositiveNumber,
    Section,
    Share,
    fail,
    raise_all,
    setting,
)


class NearDedupParams(Section):
    key = "data.near_dedup"

    enabled: bool = setting(False, "MinHash LSH near-duplicate removal over word shingles (datasketch)")
    threshold: Annotated[float, Field(gt=0, le=1)] = setting(
        0.85, "estimated Jaccard similarity at which a later document is dropped")
    shingle_size: AtLeast1 = setting(5, "words per shingle")
    num_perm: Annotated[int, Field(ge=16, le=1024)] = setting(128, "MinHash permutations")
    seed: Annotated[int, Field(ge=0, lt=2**32)] = setting(1, "seed of the MinHash permutations")


class HeldOutParams(Section):
    key = "data.held_out"

    near_dup_threshold: float | None = setting(
        0.6, "a val or test document this similar (estimated Jaccard) to a document of another split joins "
             "that split, train first, so near-duplicate clusters never straddle splits; null: off")
    min_documents: Count = setting(0, "val and test each hold at least this many documents where the corpus "
                                      "allows (the next in path-hash order)")
    min_bytes: Count = setting(0, "val and test each hold at least this many bytes where the corpus allows")

    @field_validator("near_dup_threshold")
    @classmethod
    def _threshold(cls, value: float | None) -> float | None:
        if value is not None and not 0 < value <= 1:
            raise fail("data.held_out.near_dup_threshold", "a number in (0, 1], or null (off)", value)
        return value


class QualityParams(Section):
    key = "data.quality"

    enabled: bool = setting(False, "code-quality filters as code datasets use them (docs/sources.md)")
    max_line_length: AtLeast1 = setting(1000, "drop a file with a longer line (characters)")
    mean_line_length: PositiveNumber = setting(100.0, "drop a file with longer lines than this on average")
    min_alphanumeric_fraction: Share = setting(0.25, "drop a file with a smaller share of letters and digits")
    max_data_fraction: Share = setting(0.5, "drop a file with more literal-only lines than this share")


class SlurmParams(Section):
    key = "data.slurm"

    partition: str | None = setting(
        None, "the partition the job array runs on (required with executor slurm)")
    time: str = setting("04:00:00", "each task's time limit")
    cpus_per_task: AtLeast1 = setting(1, "prepare: processes per task; tokenize: encoding threads per task")
    mem_per_cpu_gb: AtLeast1 = setting(2, "memory per CPU, GB")
    sbatch_args: dict[str, str | int] = setting(dict, "more #SBATCH options, e.g. {account: my-project}")
    env_command: str | None = setting(None, "shell line a task runs first; null: activate the stage's venv")

    @field_validator("time")
    @classmethod
    def _time(cls, value: str) -> str:
        if not value.strip():
            raise fail("data.slurm.time", "a Slurm time limit such as 04:00:00", value)
        return value


class RayParams(Section):
    key = "data.ray"

    address: str | None = setting(None, "the cluster; null: RAY_ADDRESS, else the one `ray start` made here")
    cpus_per_task: AtLeast1 = setting(1, "prepare: processes per task; tokenize: encoding threads per task")
    mem_per_cpu_gb: AtLeast1 = setting(2, "memory per CPU, GB")


class DataParams(Section):
    key = "data"

    source: Literal["stdlib", "dir", "jsonl", "hf"] = setting(
        "stdlib", "where documents come from (docs/sources.md)")
    path: str | None = setting(
        None, "dir: a folder; jsonl: a .jsonl(.gz/.zst) file; hf: shards, a save_to_disk "
                                 "folder or a hub id in the local HF cache")
    revision: str | None = setting(None, "hf: branch, tag or commit of a hub dataset id (never downloaded)")
    split: str = setting("train", "hf: the dataset's split read (all of it is split again by path hash)")
    include: list[str] = setting(lambda: ["**/*.py"], "globs of the files read (stdlib, dir)")
    text_field: str = setting("text", "jsonl, hf: the field holding the text")
    id_field: str | None = setting(
        None, "jsonl, hf: the document's identity; null: `path`, then `id`, then row")
    max_file_bytes: Positive = setting(1_000_000, "larger documents are rejected")
    val_fraction: Fraction = setting(0.1, "share of documents in val, by a stable hash of the path")
    test_fraction: Fraction = setting(0.1, "share of documents in test, by a stable hash of the path")
    redact_secrets: bool = setting(
        True, "redact keys, tokens, passwords (and PII, unless redact_pii is false)")
    redact_pii: bool = setting(True, "redact e-mail and public IP addresses too (docs/secrets.md)")
    drop_generated: bool = setting(True, "reject files whose first 5 lines say they were generated")
    respect_gitignore: bool = setting(True, "dir: skip what the corpus's own .gitignore files ignore")
    near_dedup: NearDedupParams = setting(NearDedupParams, "near-duplicate removal")
    quality: QualityParams = setting(QualityParams, "code-quality filters")
    held_out: HeldOutParams = setting(HeldOutParams, "val and test that mean something (docs/scaling.md)")
    decontaminate: list[Literal["humaneval"]] = setting(
        lambda: ["humaneval"], "benchmarks whose problems no document may contain: removed from every split, "
                               "counted and listed in data/prepared/decontaminated.ndjson")
    license_filter: Literal["all", "permissive"] | list[str] = setting(
        "all", "keep every document (all), the permissive ones (The Stack's list; unknown dropped) or "
               "those a list of SPDX ids satisfies; each records its license (docs/licenses.md)")
    workers: Cores = setting(0, "processes that filter, redact and hash (outputs never depend on it)")
    shard_mb: Mib = setting(64, "prepared shards close past this many MiB of text")
    engine: Literal["local", "datatrove"] = setting(
        "local", "datatrove: tasks on its executor (docs/scaling.md)")
    tasks: Annotated[int, Field(ge=0), Hint("0 = data.workers")] = setting(
        0, "datatrove: tasks the source is cut into")
    executor: Literal["local", "slurm", "ray"] = setting(
        "local", "where datatrove's tasks run, for prepare and tokenize alike")
    slurm: SlurmParams = setting(SlurmParams, "executor slurm: one job array")
    ray: RayParams = setting(RayParams, "executor ray: tasks on a Ray cluster")

    @field_validator("decontaminate")
    @classmethod
    def _once(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise fail("data.decontaminate", "each benchmark once", value)
        return value

    @field_validator("include")
    @classmethod
    def _some_glob(cls, value: list[str]) -> list[str]:
        if not value:
            raise ParamsError("data.include: expected at least one glob, got an empty list")
        return value

    @model_validator(mode="after")
    def _relations(self) -> Self:
        problems = []
        if self.source in ("dir", "jsonl", "hf") and not self.path:
            what = {"dir": "a folder", "jsonl": "a JSONL file",
                    "hf": "a folder of shards, a save_to_disk folder or a hub dataset id"}[self.source]
            problems.append(ParamsError(f"data.path: required when data.source is {self.source!r} ({what}), "
                                        "got null"))
        if self.revision is not None and self.source != "hf":
            problems.append(ParamsError(f"data.revision: applies to data.source 'hf' only, got source "
                                        f"{self.source!r}"))
        if (total := self.val_fraction + self.test_fraction) >= 1:
            problems.append(fail("data.val_fraction + data.test_fraction",
                                 "a sum < 1 (something must be left for train)", total))
        if self.executor == "slurm" and not (self.slurm.partition or "").strip():
            problems.append(ParamsError("data.slurm.partition: required when data.executor is 'slurm' (the "
                                        "partition the job array runs on), got null"))
        raise_all(problems)
        return self


class TokenizerParams(Section):
    key = "tokenizer"

    backend: Literal["sentencepiece", "hf-bpe", "pretrained"] = setting(
        "hf-bpe", "hf-bpe: byte-level BPE (HF tokenizers); pretrained: model.pretrained's own (none trained)")
    vocab_size: int = setting(4096, "tokens, including the 7 special tokens and the 256 byte tokens")
    model_type: Literal["bpe", "unigram"] = setting("bpe", "sentencepiece only (hf-bpe is always bpe)")
    max_sentence_length: Annotated[int, Field(ge=10, le=2**30), Hint("SentencePiece's limits")] = setting(
        16384, "sentencepiece: longest training line, bytes")
    workers: Cores = setting(0, "encoding threads (the token files never depend on it)")
    sample_mb: Mib = setting(32, "the tokenizer learns from a seeded sample of at most this much train text")
    seed: int = setting(1337, "seed of that sample")
    engine: Literal["local", "datatrove"] = setting("local", "datatrove: one task per prepared shard")

    @model_validator(mode="after")
    def _relations(self) -> Self:
        # The floor is what every model holds before learning anything: 4 specials, 3 FIM sentinels
        # and 256 bytes (+ the newline piece for sentencepiece). ids must fit the uint32 token files.
        floor = 265 if self.backend == "sentencepiece" else 264
        problems = []
        if self.backend != "pretrained" and not floor <= self.vocab_size <= 2**32:
            problems.append(fail("tokenizer.vocab_size", f"an integer in [{floor}, 4294967296] for backend "
                                 f"{self.backend}", self.vocab_size))
        if self.backend == "hf-bpe" and self.model_type != "bpe":
            problems.append(ParamsError(f"tokenizer.model_type: {self.model_type!r} applies to backend "
                                        f"sentencepiece only; backend {self.backend} is always 'bpe'"))
        raise_all(problems)
        return self
