"""prepare's per-document work as datatrove tasks (`data.engine: datatrove`, codex_ml/executors.py).

Task r of T runs `process_batch` over contiguous part r of the source (`source.documents(r, T)`)
and appends each batch's `Processed` results to its own file in the work folder, so a task holds one
batch at a time whatever its part's size. The stage's process then reads the files in rank order,
which is the source order (the parts concatenate to the whole sequence), and hands them to
`kept_documents` and the split assignment: dedup, splits and counts see exactly what the local path
gives them, so the shards and metrics are the same bytes for any T and any executor.

The files are pickles, written and read back by this same run inside its own temporary folder;
nothing read from outside the run is unpickled.
"""

from __future__ import annotations

import contextlib
import os
import pickle
from collections.abc import Iterator
from functools import partial
from pathlib import Path

from codex_ml.data.process import BATCH_DOCS, Processed, processed_in_order
from codex_ml.data.sources import open_source
from codex_ml.executors import Task, absolute, check_executor, cpus_per_task, run_tasks, work_folder
from codex_ml.params import DataParams
from codex_ml.runtime import resolve_cores


def part_file(work: Path, rank: int) -> Path:
    return work / f"processed-{rank:05d}.pickle"


def process_part(params: DataParams, work: Path, processes: int, rank: int, world_size: int) -> None:
    """Task `rank`: the per-document work over its part of the source, on `processes` processes, into
    its part file (written aside and renamed: a file that exists is whole)."""
    out = part_file(work, rank)
    partial_out = out.with_suffix(".tmp")
    with open(partial_out, "wb") as f:
        batch: list[Processed] = []
        documents = open_source(params).documents(rank, world_size)  # this task's process resolves it
        for processed in processed_in_order(params, documents, processes):
            batch.append(processed)
            if len(batch) >= BATCH_DOCS:
                pickle.dump(batch, f, protocol=pickle.HIGHEST_PROTOCOL)
                batch = []
        pickle.dump(batch, f, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(partial_out, out)


def read_part(path: Path) -> Iterator[Processed]:
    with open(path, "rb") as f:
        while True:
            try:
                batch: list[Processed] = pickle.load(f)
            except EOFError:
                return
            yield from batch


@contextlib.contextmanager
def processed_by_tasks(params: DataParams, scratch: Path) -> Iterator[Iterator[Processed]]:
    """What `processed_documents` yields, computed by data.tasks datatrove tasks (0: one per worker)
    on data.executor. The work folder is made in `scratch` and removed on leaving the context."""
    check_executor(params)
    workers = resolve_cores(params.workers)
    tasks = params.tasks or workers
    # Paths absolute: a task on another node or in another folder reads the same files.
    task_params = params.model_copy(update={"path": absolute(params.path)})
    with work_folder(scratch) as work:
        # On this machine the tasks are the parallelism (data.workers at once, one process each); on
        # a cluster each task uses the cores it reserved.
        task = Task("prepare: filters, hashes and redaction over part `rank` of the source",
                    partial(process_part, task_params, work, cpus_per_task(params, 1)))
        run_tasks(task, tasks, work, params, at_once=workers, what="prepare")
        yield (processed for rank in range(tasks) for processed in read_part(part_file(work, rank)))
