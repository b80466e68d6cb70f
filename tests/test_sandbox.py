"""The sandbox against hostile programs: each is contained, recorded with its kind, and nothing
outside its directory changes (checked on files the test plants, the repository and /tmp)."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from codex_ml.eval.sandbox import (
    SLOTS_PER_PROCESS,
    Limits,
    hidden_paths,
    run_many,
    run_program,
    slot_uid,
)

ROOT = Path(__file__).resolve().parents[1]
LIMITS = Limits(timeout=2.0, cpu_seconds=2)


def tree_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(folder.rglob("*"))}


def sandbox_processes() -> list[int]:
    """Processes still running as one of this process's sandbox slot uids (another process's sandbox,
    e.g. a parallel test worker's, has its own block of uids)."""
    first = slot_uid(0)
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if first <= entry.stat().st_uid < first + SLOTS_PER_PROCESS:
                    out.append(int(entry.name))
            except FileNotFoundError:
                continue
    return out


@pytest.fixture
def canary(tmp_path: Path) -> Path:
    """A world-writable folder with a world-writable file: the most exposed user files can be."""
    folder = tmp_path / "canary"
    folder.mkdir()
    (folder / "keep.txt").write_text("precious\n")
    os.chmod(tmp_path, 0o755)
    os.chmod(folder, 0o777)
    os.chmod(folder / "keep.txt", 0o666)
    return folder


def test_hostile_programs_are_contained_and_recorded(canary: Path, tmp_path: Path) -> None:
    marker = Path("/tmp") / f"codex-hostile-{os.getpid()}"
    readme = ROOT / "README.md"
    hostile = {
        "infinite loop": ("while True:\n    pass\n", {"timeout"}),
        "fork bomb": ("import os\nwhile True:\n    try:\n        os.fork()\n"
                      "    except OSError:\n        pass\n", {"timeout"}),
        "10 GB allocation": ("x = bytearray(10 * 1024 ** 3)\n", {"exception"}),
        "write outside": (f"open({str(canary / 'keep.txt')!r}, 'w').write('owned')\n", {"exception"}),
        "new file outside": (f"open({str(canary / 'new.txt')!r}, 'w').write('x')\n", {"exception"}),
        "delete outside": (f"import os\nos.remove({str(canary / 'keep.txt')!r})\n", {"exception"}),
        "delete the repository": (f"import shutil\nshutil.rmtree({str(ROOT)!r})\n", {"exception"}),
        "edit the repository": (f"open({str(readme)!r}, 'a').write('owned')\n", {"exception"}),
        "write /tmp": (f"open({str(marker)!r}, 'w').write('x')\n", {"exception"}),
        "socket": ("import socket\nsocket.create_connection(('1.1.1.1', 80), timeout=1)\n", {"exception"}),
        "os._exit": ("import os\nos._exit(0)\n", {"killed"}),
        "kill its parent": ("import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n", {"exception"}),
        "kill the group": ("import os, signal\nos.killpg(0, signal.SIGKILL)\n", {"killed", "exception"}),
        "flood stdout": ("import sys\nwhile True:\n    sys.stdout.write('x' * 65536)\n", {"killed"}),
        "syntax": ("def f(:\n", {"syntax"}),
        "assertion": ("assert 1 + 1 == 3\n", {"assertion"}),
    }
    before_repo = hashlib.sha256(readme.read_bytes()).hexdigest()
    before = tree_digest(tmp_path)
    # The infinite loop and the fork bomb end as `timeout`: the limits stopped them (no wall-clock
    # assertion here: a loaded machine, or parallel tests, would make one flaky).
    outcomes = run_many([program for program, _ in hostile.values()], LIMITS, workers=4)
    for (name, (_, kinds)), outcome in zip(hostile.items(), outcomes, strict=True):
        assert outcome.kind in kinds, (name, outcome)
    assert os.getpid() > 0 and os.getppid() > 1  # this process and its parent are alive
    assert tree_digest(tmp_path) == before
    assert hashlib.sha256(readme.read_bytes()).hexdigest() == before_repo
    assert not marker.exists()
    deadline = time.monotonic() + 5  # the kernel kills a dead namespace's processes asynchronously
    while sandbox_processes() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sandbox_processes() == []  # the fork bomb's processes died with their namespace
    isolation = {o.isolation for o in outcomes}
    assert len(isolation) == 1  # the same everywhere; which namespaces the kernel gave, for the record
    print("isolation:", isolation.pop())


def test_ordinary_programs_run_and_see_only_their_own_folder() -> None:
    ok = run_program("import math, hashlib, collections, re, os\n"
                     "open('scratch.txt', 'w').write('x')\n"
                     "assert os.listdir('.') == ['scratch.txt']\n"
                     "assert os.environ['HOME'] == os.getcwd()\n", LIMITS)
    assert ok.passed, ok
    hidden = run_program(f"import os\nassert not os.path.exists({str(ROOT / 'README.md')!r})\n", LIMITS)
    assert hidden.passed, hidden
    assert str(ROOT) in " ".join(hidden_paths()) or any(str(ROOT).startswith(p) for p in hidden_paths())
    network = run_program("import socket\ns = socket.socket()\ns.connect(('127.0.0.1', 22))\n", LIMITS)
    assert network.kind == "exception" and "Errno" in network.error
    stdin = run_program("import sys\nassert sys.stdin.read() == ''\n", LIMITS)
    assert stdin.passed, stdin


def test_each_evaluating_process_has_its_own_slot_uids() -> None:
    """Two evals at once (dvc queue -j 2, parallel tests) never share a slot user, so never a
    process limit; every slot uid is far above real accounts."""
    a = {slot_uid(s, pid=101) for s in range(SLOTS_PER_PROCESS)}
    b = {slot_uid(s, pid=102) for s in range(SLOTS_PER_PROCESS)}
    assert len(a) == len(b) == SLOTS_PER_PROCESS and not a & b
    assert min(a | b) >= 2_000_000
