"""tokenize's packing as datatrove tasks (`tokenizer.engine: datatrove`, codex_ml/executors.py).

The tokenizer is trained (or taken from the base model) and saved by the stage's own process, as on
the local path. Then one task per prepared shard loads the saved tokenizer and calls `pack_shard`,
which writes token shard `{split}-NNNNN.bin` straight into the stage's temporary tokens folder and
returns the shard's counts and index rows; the task saves those (`PackedShard`) in the work folder.
The stage's process reads them back in shard order and `assemble_split` writes each split's index and
meta entry, exactly as `pack_split` does: the same bytes, whatever the executor.

A `PackedShard` file is a pickle written and read back by this same run inside its own temporary
folder; nothing read from outside the run is unpickled.
"""

from __future__ import annotations

import os
import pickle
from functools import partial
from pathlib import Path

from codex_ml.executors import Task, check_executor, cpus_per_task, run_tasks, work_folder
from codex_ml.params import DataParams
from codex_ml.paths import SPLITS
from codex_ml.shards import prepared_shards, shard_name
from codex_ml.tokenization import configure_threads, load_tokenizer
from codex_ml.tokenization.pack import PackedShard, PackedSplit, assemble_split, pack_shard

# (split, shard number, prepared shard's absolute path)
Job = tuple[str, int, str]

__all__ = ["check_executor", "pack_by_tasks"]


def packed_file(work: Path, split: str, number: int) -> Path:
    return work / shard_name(split, number, ".packed")


def pack_part(jobs: list[Job], tokenizer_dir: Path, tokens_dir: Path, work: Path, threads: int,
              rank: int, world_size: int) -> None:
    """Task `rank`: pack its prepared shards (every `world_size`-th job) with the saved tokenizer."""
    configure_threads(threads)  # before the first encode: the Rust pool reads it once per process
    tok = load_tokenizer(tokenizer_dir)
    table = tok.byte_fallback_table()
    for split, number, source in jobs[rank::world_size]:
        shard = pack_shard(tok, Path(source), tokens_dir / shard_name(split, number, ".bin"), threads, table)
        out = packed_file(work, split, number)
        with open(out.with_suffix(".tmp"), "wb") as f:
            pickle.dump(shard, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(out.with_suffix(".tmp"), out)


def read_packed(path: Path) -> PackedShard:
    with open(path, "rb") as f:
        shard: PackedShard = pickle.load(f)
    return shard


def pack_by_tasks(tokenizer_dir: Path, prepared_dir: Path, tokens_dir: Path, threads: int,
                  data: DataParams) -> dict[str, PackedSplit]:
    """What `pack_split` gives for every split, packed by one datatrove task per prepared shard on
    data.executor; `tokenizer_dir` holds the saved tokenizer, `tokens_dir` is the folder being built."""
    jobs: list[Job] = [(split, number, str(source.resolve())) for split in SPLITS
                       for number, source in enumerate(prepared_shards(prepared_dir, split))]
    # On this machine the tasks run one at a time, each encoding on all `threads` as the local path
    # does: the encoder is the parallelism, and tasks at once would multiply the ids in flight (three
    # chunks of ~100 MB each) for no speed. On a cluster each task encodes with the cores it reserved.
    per_task = cpus_per_task(data, threads)
    with work_folder(tokens_dir) as work:
        task = Task("tokenize: pack prepared shard `rank` with the saved tokenizer",
                    partial(pack_part, jobs, tokenizer_dir.resolve(), tokens_dir.resolve(), work, per_task))
        run_tasks(task, len(jobs), work, data, at_once=1, what="tokenize")
        return {split: assemble_split(split, (read_packed(packed_file(work, s, n)) for s, n, _ in jobs
                                              if s == split), tokens_dir)
                for split in SPLITS}
