"""Running a stage's work as datatrove tasks: on this machine, as a Slurm job array, or on a Ray cluster.

`data.engine: datatrove` (prepare) and `tokenizer.engine: datatrove` (tokenize) cut their parallel work
into tasks that datatrove's executors run (datatrove is the library behind FineWeb; its executors
place numbered tasks on local processes, a Slurm job array or Ray workers, and restart what failed).
`data.executor` says which executor, for both stages. The order-dependent part of each stage (exact
dedup and splits; the tokenizer's training and the index) stays in the stage's own process, which
reads the tasks' results in task order: the outputs are the bytes the local path writes.

The contract with the stages (data/prepare_tasks.py, tokenization/tokenize_tasks.py):

1. A task is `Task(work)`: `work(rank, world_size)` writes the task's results as files into a work
   folder and returns nothing; no documents flow through datatrove itself.
2. The work folder is private to one run: `work_folder` makes a fresh one inside the stage's temporary
   output folder and removes it before the outputs are swapped in. datatrove's logging_dir (its
   completion marks, stats and task logs) lives there too, so `skip_completed` can skip a task of
   this run that Slurm requeued or Ray retried, never a stale task of an earlier run.
3. `run_tasks` returns once every task has finished, and raises one StageError when one did not: a
   DVC stage must end only when its outputs are complete. The local and Ray executors block until
   their tasks end; datatrove's Slurm executor returns once `sbatch` has queued the array, so the
   stage then waits on datatrove's own completion marks (as its `depends=` does), and takes a job
   that has left the queue with tasks unmarked as failed.
4. Paths handed to tasks are absolute: a Slurm or Ray task may start in another folder. With slurm
   or ray, the repository must be on a file system every node sees, with the same environment there.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

# Before datatrove imports loguru: a failed task logs a plain traceback, not the local variables of
# every frame (document text, before redaction, among them) that loguru's defaults would print.
os.environ.setdefault("LOGURU_DIAGNOSE", "NO")
os.environ.setdefault("LOGURU_BACKTRACE", "NO")

from datatrove.executor import LocalPipelineExecutor, SlurmPipelineExecutor
from datatrove.executor.base import PipelineExecutor
from datatrove.pipeline.base import PipelineStep

from codex_ml.params import DataParams
from codex_ml.runtime import StageError

# squeue is asked after 1 s, then twice as long each time up to 15 s: a short array is seen to end at
# once, a long one costs the scheduler one query every 15 s.
SLURM_POLL_SECONDS = (1.0, 15.0)


class Task(PipelineStep):
    """One datatrove task: `work(rank, world_size)`, whose results are files. `work` must pickle
    (a functools.partial of a module-level function): executors ship it to other processes."""

    type = "codex-ml"

    def __init__(self, name: str, work: Callable[[int, int], None]):
        self.name = name  # before PipelineStep's __init__, which names the task's stats after it
        super().__init__()
        self.work = work

    def run(self, data: Any = None, rank: int = 0, world_size: int = 1) -> Iterator[Any]:
        self.work(rank, world_size)
        yield from ()


def check_executor(data: DataParams) -> None:
    """Before any work: `data.executor` can run from here, else one error naming the param."""
    if data.executor == "slurm":
        missing = [c for c in ("sbatch", "squeue") if shutil.which(c) is None]
        if missing:
            raise StageError(f"data.executor: 'slurm' needs Slurm's {' and '.join(missing)} on PATH (run the "
                             "stage on a Slurm login node), or set data.executor: local")
    elif data.executor == "ray" and importlib.util.find_spec("ray") is None:
        raise StageError("data.executor: 'ray' needs the ray package, here and on every node of the "
                         "cluster: pip install 'ray==2.60.0' (in the project's dev extra), or set "
                         "data.executor: local")


def cpus_per_task(data: DataParams, local: int) -> int:
    """The cores one task may use: `local` on this machine, what each task reserves on a cluster."""
    if data.executor == "slurm":
        return data.slurm.cpus_per_task
    if data.executor == "ray":
        return data.ray.cpus_per_task
    return local


@contextlib.contextmanager
def work_folder(parent: Path) -> Iterator[Path]:
    """A fresh folder for one run's task results and datatrove logs, removed afterwards."""
    folder = Path(tempfile.mkdtemp(dir=parent, prefix=".datatrove-")).resolve()
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run_tasks(task: Task, tasks: int, work: Path, data: DataParams, at_once: int, what: str) -> None:
    """Run ranks 0..tasks-1 of `task` on `data.executor` and return when all have finished; one
    StageError when any failed. On this machine `at_once` tasks run at a time: in this process when
    1, else in forked processes (as the local path's workers are)."""
    logs = work / "logs"
    executor: PipelineExecutor
    try:
        if data.executor == "slurm":
            executor = _slurm(task, tasks, logs, data, what)
            executor.run()  # sbatch: queues the array and returns
            _wait_for_slurm(executor)
        elif data.executor == "ray":
            executor = _ray(task, tasks, logs, data)
            executor.run()
        else:
            executor = LocalPipelineExecutor([task], tasks=tasks, workers=max(1, min(at_once, tasks)),
                                             logging_dir=str(logs), start_method="fork")
            executor.run()
    except StageError as exc:  # a task's own message (bad input), without datatrove's frames around it
        raise StageError(str(exc)) from None
    failed = executor.get_incomplete_ranks(skip_completed=True)
    if failed:
        raise StageError(f"{what}: {len(failed)} of {tasks} datatrove tasks on data.executor "
                         f"{data.executor} did not finish; task {failed[0]}: {_last_words(logs, failed[0])}")


def _last_words(logs: Path, rank: int) -> str:
    """The last line a task logged (its exception, when it raised one)."""
    log = logs / "logs" / f"task_{rank:05d}.log"
    try:
        lines = [line.strip() for line in log.read_text(encoding="utf-8", errors="replace").splitlines()]
    except FileNotFoundError:
        return "it never started (no task log: see the executor's own logs)"
    return next((line for line in reversed(lines) if line), "its log is empty")


class _SlurmArray(SlurmPipelineExecutor):
    """datatrove's Slurm executor without its follow-up job that merges the tasks' stats: that job
    would run after the stage had removed the work folder, and make it again."""

    def launch_merge_stats(self) -> None:
        pass


def _slurm(task: Task, tasks: int, logs: Path, data: DataParams, what: str) -> PipelineExecutor:
    slurm = data.slurm
    venv = Path(sys.prefix) / "bin" / "activate"
    return _SlurmArray(
        [task], tasks=tasks, time=slurm.time, partition=slurm.partition, cpus_per_task=slurm.cpus_per_task,
        mem_per_cpu_gb=slurm.mem_per_cpu_gb, job_name=f"codex-ml-{what}", qos="",  # qos: in sbatch_args
        sbatch_args={k: str(v) for k, v in slurm.sbatch_args.items()}, env_command=slurm.env_command,
        venv_path=str(venv) if slurm.env_command is None and venv.is_file() else None,
        logging_dir=str(logs))


def _wait_for_slurm(executor: Any) -> None:
    """Until every task has its completion mark, or the array has left the queue without them."""
    wait, longest = SLURM_POLL_SECONDS
    while True:
        queued = _in_queue(str(executor.job_id))  # asked first: a task marks completion before it exits
        if not executor.get_incomplete_ranks(skip_completed=True) or not queued:
            return
        time.sleep(wait)
        wait = min(2 * wait, longest)


def _in_queue(job_id: str) -> bool:
    proc = subprocess.run(["squeue", "--noheader", "--jobs", job_id, "--format=%T"], capture_output=True,
                          text=True, check=False)
    return proc.returncode == 0 and bool(proc.stdout.strip())  # an unknown (finished, purged) id: 1


def _ray(task: Task, tasks: int, logs: Path, data: DataParams) -> PipelineExecutor:
    import ray
    from datatrove.executor import RayPipelineExecutor

    if not ray.is_initialized():
        ray.init(address=data.ray.address)  # None: RAY_ADDRESS, else a cluster on this machine, else new
    return RayPipelineExecutor([task], tasks=tasks, logging_dir=str(logs),
                               cpus_per_task=data.ray.cpus_per_task, mem_per_cpu_gb=data.ray.mem_per_cpu_gb)


def absolute(path: str | None) -> str | None:
    """A local path made absolute for tasks that start elsewhere; anything else (a hub id) unchanged."""
    if path is None or not os.path.exists(path):
        return path
    return str(Path(path).resolve())
