"""The sandbox against hostile programs: each is contained, recorded with its kind, and nothing
outside its directory changes (checked on files the test plants, the repository and /tmp); an
attacker's probes (tests/sandbox_probe.py) find nothing outside the allowlist, as root and as an
unprivileged user."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from codex_ml.eval import sandbox_child
from codex_ml.eval.sandbox import (
    SLOTS_PER_PROCESS,
    Limits,
    filesystem_plan,
    run_many,
    run_program,
    slot_uid,
)
from tests.sandbox_probe import probe_program

ROOT = Path(__file__).resolve().parents[1]
LIMITS = Limits(timeout=2.0, cpu_seconds=2)
SECRET = "codex-probe-secret-7f3a9c"
UNPRIVILEGED_UID = 3_000_001  # no account: nothing on the machine belongs to it


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
    # assertion here: a loaded machine, or parallel tests, would make one flaky). The programs that end
    # by themselves run apart from those two, with room on the wall clock: on a loaded machine, beside
    # two programs that keep both cores busy, one may not start its interpreter within 2 s.
    hogs = ("infinite loop", "fork bomb")
    rest = [name for name in hostile if name not in hogs]
    outcomes = dict(zip(hogs, run_many([hostile[n][0] for n in hogs], LIMITS, workers=2), strict=True))
    roomy = Limits(timeout=30.0, cpu_seconds=LIMITS.cpu_seconds)
    outcomes |= dict(zip(rest, run_many([hostile[n][0] for n in rest], roomy, workers=4), strict=True))
    for name, (_, kinds) in hostile.items():
        assert outcomes[name].kind in kinds, (name, outcomes[name])
    assert os.getpid() > 0 and os.getppid() > 1  # this process and its parent are alive
    assert tree_digest(tmp_path) == before
    assert hashlib.sha256(readme.read_bytes()).hexdigest() == before_repo
    assert not marker.exists()
    deadline = time.monotonic() + 5  # the kernel kills a dead namespace's processes asynchronously
    while sandbox_processes() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sandbox_processes() == []  # the fork bomb's processes died with their namespace
    isolation = {o.isolation for o in outcomes.values()}
    assert len(isolation) == 1  # the same everywhere; which namespaces the kernel gave, for the record
    print("isolation:", isolation.pop())


def test_ordinary_programs_run_and_see_only_their_own_folder() -> None:
    ok = run_program("import math, hashlib, collections, re, os, json, decimal, sqlite3, zlib, ctypes\n"
                     "open('scratch.txt', 'w').write('x')\n"
                     "assert os.listdir('.') == ['scratch.txt']\n"
                     "assert os.environ['HOME'] == os.getcwd()\n", LIMITS)
    assert ok.passed, ok
    hidden = run_program(f"import os\nassert not os.path.exists({str(ROOT / 'README.md')!r})\n", LIMITS)
    assert hidden.passed, hidden
    network = run_program("import socket\ns = socket.socket()\ns.connect(('127.0.0.1', 22))\n", LIMITS)
    assert network.kind == "exception" and network.error_type == "OSError" and "Errno" in network.error
    stdin = run_program("import sys\nassert sys.stdin.read() == ''\n", LIMITS)
    assert stdin.passed, stdin
    assert ok.isolation == ("" if os.getuid() == 0 else "user,") + "net,pid,mnt,ipc,uts,cgroup,proc"


@pytest.fixture
def secret_file() -> Iterator[Path]:
    """A world-readable file with a known secret outside the repository and outside pytest's own
    (private) temporary folder: readable by any user on the machine."""
    folder = Path(tempfile.mkdtemp(prefix="codex-probe-"))
    try:
        folder.chmod(0o755)
        path = folder / "secret.txt"
        path.write_text(SECRET + "\n")
        path.chmod(0o644)
        yield path
    finally:
        shutil.rmtree(folder)


def test_the_program_sees_only_its_allowlist(secret_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The probes: a secret file by absolute path, / and /etc, /proc and other processes' command
    lines, environment variables, /proc/self/root and symlinks out, and a walk of everything visible
    against the allowlist. The same probe fails (and so can fail) when a hole is planted."""
    monkeypatch.setenv("CODEX_PROBE_SECRET", SECRET)
    limits = Limits(timeout=30, cpu_seconds=30)
    outcome = run_program(probe_program(str(secret_file), SECRET), limits)
    assert outcome.passed, outcome
    # The probe itself can fail: outside the sandbox (plain python) it sees the secret at once.
    plain = subprocess.run([sys.executable, "-I", "-S", "-"], input=probe_program(str(secret_file), SECRET),
                           capture_output=True, text=True, cwd=secret_file.parent)
    assert plain.returncode != 0 and "AssertionError" in plain.stderr


def test_the_allowlist_is_the_standard_library_and_its_libraries() -> None:
    """Every mount in the plan is the standard library, a shared library, /dev/null or /dev/urandom;
    nothing of the repository, /etc, home folders or site-packages."""
    stdlib = os.path.dirname(os.__file__)
    for op, path, _ in filesystem_plan():
        if op == "ro":
            inside = os.path.realpath(path).startswith(os.path.realpath(stdlib))
            assert inside or ".so" in Path(path).name, path
        elif op == "dev":
            assert path in ("/dev/null", "/dev/urandom")
        elif op == "empty":
            assert Path(path).name in ("site-packages", "dist-packages")
        if op != "link":
            assert not path.startswith(("/etc", "/home", str(ROOT))), path


def unprivileged_python() -> str | None:
    """An interpreter (3.11+) the unprivileged uid may run: this one, else the system's."""
    for candidate in (sys.executable, "/usr/bin/python3", "/usr/local/bin/python3"):
        check = subprocess.run(["setpriv", f"--reuid={UNPRIVILEGED_UID}", f"--regid={UNPRIVILEGED_UID}",
                                "--clear-groups", candidate, "-I", "-S", "-c",
                                "import os, sys; assert sys.version_info >= (3, 11) "
                                "and os.access(sys.executable, os.X_OK)"], capture_output=True,
                               cwd="/")
        if check.returncode == 0:
            return candidate
    return None


@pytest.mark.skipif(os.getuid() != 0 or shutil.which("setpriv") is None,
                    reason="as root, setpriv drops to an unprivileged uid; as a user, the test above "
                           "already runs the user-namespace path")
def test_as_an_unprivileged_user_the_probes_find_nothing_either(secret_file: Path) -> None:
    """The user-namespace path: the same probes, run by an unprivileged uid (setpriv, no groups)."""
    python = unprivileged_python()
    if python is None:
        pytest.skip(f"no Python 3.11+ here is executable by uid {UNPRIVILEGED_UID}")
    script = (f"import sys, json\nsys.path[:0] = [{str(ROOT)!r}]\n"
              "from tests.sandbox_probe import probe_program\n"
              "from codex_ml.eval.sandbox import Limits, run_program, SandboxUnavailable\n"
              "try:\n"
              f"    o = run_program(probe_program({str(secret_file)!r}, {SECRET!r}), Limits(timeout=30, "
              "cpu_seconds=30))\n"
              "    print(json.dumps([o.kind, o.error_type, o.error, o.isolation]))\n"
              "except SandboxUnavailable as exc:\n"
              "    print(json.dumps(['unavailable', '', str(exc), '']))\n")
    env = {"PATH": "/usr/bin:/bin", "CODEX_PROBE_SECRET": SECRET}
    done = subprocess.run(["setpriv", f"--reuid={UNPRIVILEGED_UID}", f"--regid={UNPRIVILEGED_UID}",
                           "--clear-groups", python, "-I", "-c", script], capture_output=True, text=True,
                          cwd="/", env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    kind, error_type, error, isolation = json.loads(done.stdout.splitlines()[-1])
    if kind == "unavailable":
        pytest.skip(f"the kernel refuses an unprivileged user namespace here: {error}")
    assert (kind, error_type, error) == ("passed", "", ""), (kind, error_type, error)
    assert isolation == "user,net,pid,mnt,ipc,uts,cgroup,proc"


def test_the_child_protocol_round_trips() -> None:
    """What the parent writes to the child's stdin, and the child's report lines, read back; lines
    without this run's nonce and malformed ones are ignored."""
    setup = {"nonce": "n1", "plan": [("ro", "/usr/lib", "")], "limits": {"cpu": 3}}
    got, source = sandbox_child.read_input(io.BytesIO(sandbox_child.encode_input(setup, b"print(1)\n\x00")))
    assert got == {"nonce": "n1", "plan": [("ro", "/usr/lib", "")], "limits": {"cpu": 3}}
    assert source == b"print(1)\n\x00"
    read_end, write_end = os.pipe()
    sandbox_child.report(write_end, "n1", "outcome", "exception", "ValueError", "bad \n value é")
    sandbox_child.report(write_end, "forged", "outcome", "passed", "", "")
    os.write(write_end, b"n1 outcome zz\n")
    os.close(write_end)
    data = os.read(read_end, 4096)
    os.close(read_end)
    reports = sandbox_child.parse_reports(data, "n1")
    assert reports == {"outcome": ["exception", "ValueError", "bad \n value é"]}
    assert sandbox_child.kept_flags("/") & sandbox_child.MS_RDONLY == 0


def test_each_evaluating_process_has_its_own_slot_uids() -> None:
    """Two evals at once (dvc queue -j 2, parallel tests) never share a slot user, so never a
    process limit; every slot uid is far above real accounts."""
    a = {slot_uid(s, pid=101) for s in range(SLOTS_PER_PROCESS)}
    b = {slot_uid(s, pid=102) for s in range(SLOTS_PER_PROCESS)}
    assert len(a) == len(b) == SLOTS_PER_PROCESS and not a & b
    assert min(a | b) >= 2_000_000
