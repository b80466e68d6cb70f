"""data.executor ray on a real Ray cluster (`ray start --head` on 127.0.0.1, once per test session):
prepare and tokenize as datatrove tasks on Ray write the bytes, and DVC records the hashes, of
datatrove's local executor; a Ray worker killed mid-task is retried and the bytes do not change."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import pytest

import codex_ml.data.prepare_tasks as data_engine
from codex_ml.executors import Task
from tests.clusters import RAY_ENV, engine_repo, kill_own_worker_once, repro_on
from tests.preparekit import run_prepare

pytestmark = pytest.mark.cluster


def test_prepare_and_tokenize_on_ray_match_the_local_executor(ray_address: str, stdlib_sample: Path,
                                                              tmp_path: Path) -> None:
    repo = engine_repo(tmp_path, stdlib_sample)
    local_md5, local_files = repro_on(repo, "local", {})
    ray_md5, ray_files = repro_on(repo, "ray", RAY_ENV, ray={"address": ray_address})
    assert ray_md5 == local_md5
    assert ray_files == local_files
    assert any(k.startswith("data/tokens/") and k.endswith(".bin") for k in ray_files)


def test_a_ray_worker_killed_mid_task_is_retried_and_the_bytes_do_not_change(
        ray_address: str, stdlib_sample: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data: dict[str, Any] = {"source": "dir", "path": str(stdlib_sample), "engine": "datatrove", "tasks": 3}
    local = run_prepare(tmp_path / "local", workers=2, **data)
    marker = tmp_path / "killed"

    def task_killing_rank_1(name: str, work: Any) -> Task:
        return Task(name, partial(kill_own_worker_once, marker, 1, work))

    monkeypatch.setattr(data_engine, "Task", task_killing_rank_1)
    on_ray = run_prepare(tmp_path / "ray", executor="ray", ray={"address": ray_address}, **data)
    assert marker.is_file()  # the worker running task 1 was killed once, and the task ran again
    assert on_ray == local
