"""data.executor slurm on a real single-node Slurm (munged, slurmctld and slurmd from Debian's packages,
on 127.0.0.1, started once per test session): prepare and tokenize run as Slurm job arrays and write
the bytes, and DVC records the hashes, of datatrove's local executor."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.clusters import engine_repo, repro_on

pytestmark = pytest.mark.cluster


def test_prepare_and_tokenize_as_slurm_job_arrays_match_the_local_executor(
        slurm_env: dict[str, str], stdlib_sample: Path, tmp_path: Path) -> None:
    repo = engine_repo(tmp_path, stdlib_sample)
    local_md5, local_files = repro_on(repo, "local", {})
    log = Path(slurm_env["SLURM_CONF"]).parent / "log" / "slurmctld.log"
    before = len(log.read_text().splitlines())
    slurm_md5, slurm_files = repro_on(repo, "slurm", slurm_env,
                                      slurm={"partition": "debug", "cpus_per_task": 1, "mem_per_cpu_gb": 1})
    assert slurm_md5 == local_md5
    assert slurm_files == local_files
    # slurmctld's own log: two arrays (prepare's 3 tasks, tokenize's one per shard), every task exit 0.
    done: dict[str, dict[int, str]] = {}
    for line in log.read_text().splitlines()[before:]:
        if m := re.search(r"_job_complete: JobId=(\d+)_(\d+)\(\d+\) WEXITSTATUS (\d+)", line):
            done.setdefault(m[1], {})[int(m[2])] = m[3]
    assert len(done) == 2, done
    prepare, tokenize = (done[job] for job in sorted(done, key=int))
    assert sorted(prepare) == [0, 1, 2]
    shards = len([k for k in local_files if k.startswith("data/prepared/") and k.endswith(".jsonl")])
    assert sorted(tokenize) == list(range(shards))
    assert {s for d in done.values() for s in d.values()} == {"0"}
