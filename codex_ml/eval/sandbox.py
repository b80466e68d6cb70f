"""A sandbox for generated code: each program runs in its own process, contained, and its outcome is
one of a few kinds. docs/sandbox.md says what it protects against and what it does not.

How one program runs (`run_program`):
1. The parent makes a fresh directory (0700) and starts the interpreter (`python -I -S`: no
   environment variables, no site-packages) in it as cwd and HOME, with a minimal environment, in a
   new session (its own process group), stdin a pipe that carries the program and is then closed.
2. The child (`_RUNNER`) reads the program, replaces stdin with /dev/null and asks the kernel for new
   network, PID and mount namespaces (as root directly; otherwise inside a new user namespace). With
   a mount namespace it covers the repository, the working directory, the home directories and /root
   with empty read-only tmpfs mounts, re-exposing only the interpreter's own prefix read-only.
3. It forks: the grandchild is PID 1 of the new PID namespace (when the kernel gave one), dies with
   its parent (PR_SET_PDEATHSIG), sets rlimits (CPU seconds, address space, file size, open files,
   processes, no core files), drops to an unprivileged uid/gid of its slot when started as root,
   compiles and executes the program, and reports its outcome on a pipe, with a nonce.
4. The parent reads output up to a cap (over it: killed), kills the whole process group at the
   wall-clock limit or at the end (and with it, via the PID namespace, every process the program
   started, even ones that left the group), and removes the directory.

Kinds: passed, assertion (AssertionError), exception (any other exception, MemoryError included),
syntax (the program does not compile), timeout (wall clock or CPU limit), killed (a signal, an exit
without a report — os._exit, sys.exit — or output over the cap).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

KINDS = ("passed", "assertion", "exception", "syntax", "timeout", "killed")
UID_BASE = 2_000_000  # slot uids, far above any real account: each parallel slot its own user
SLOTS_PER_PROCESS = 1024


def slot_uid(slot: int, pid: int | None = None) -> int:
    """The uid of `slot` of this process: its own block of uids per evaluating process, so two evals
    at once on one machine (a `dvc queue` with 2 workers, parallel tests) never share a user, and so
    never a process limit (RLIMIT_NPROC counts per user) or a kill."""
    block = (os.getpid() if pid is None else pid) % 4096
    return UID_BASE + block * SLOTS_PER_PROCESS + slot % SLOTS_PER_PROCESS


@dataclass(frozen=True)
class Limits:
    timeout: float = 5.0  # wall-clock seconds
    cpu_seconds: int = 5  # RLIMIT_CPU; SIGXCPU past it
    memory_bytes: int = 1 << 30  # RLIMIT_AS
    file_bytes: int = 1 << 20  # RLIMIT_FSIZE: largest file the program may write
    open_files: int = 64  # RLIMIT_NOFILE
    processes: int = 16  # RLIMIT_NPROC (per slot uid when started as root)
    output_bytes: int = 1 << 20  # stdout + stderr, beyond which the program is killed


@dataclass(frozen=True)
class Outcome:
    kind: str  # one of KINDS
    error: str  # the exception's last line, the signal, or "" when passed
    seconds: float
    isolation: str  # which namespaces the kernel gave: "net,pid,mnt" or a subset, "" for none

    @property
    def passed(self) -> bool:
        return self.kind == "passed"


# The child's program. It runs as `python -I -S -c _RUNNER uid gid result_fd cpu as fsize nofile nproc
# hide...`; everything it needs is imported before the mounts change and privileges drop.
_RUNNER = r'''
import ctypes, json, os, resource, signal, sys
uid, gid, fd, cpu, mem, fsize, nofile, nproc = (int(a) for a in sys.argv[1:9])
hide = sys.argv[9:]
data = sys.stdin.buffer.read()
nonce, _, source = data.partition(b"\n")
null = os.open("/dev/null", os.O_RDONLY)
os.dup2(null, 0)
os.close(null)
libc = ctypes.CDLL(None, use_errno=True)
NET, PID, MNT, USER = 0x40000000, 0x20000000, 0x00020000, 0x10000000
got = []
for flags, names in ((NET | PID | MNT, ["net", "pid", "mnt"]), (NET | MNT, ["net", "mnt"]), (NET, ["net"])):
    if libc.unshare(flags | (0 if os.getuid() == 0 else USER)) == 0:
        got = names
        break
def mount(src, dst, fstype, flags, opts):
    if libc.mount(src, dst.encode(), fstype, flags, opts) != 0:
        raise OSError(ctypes.get_errno(), "mount " + dst)
RDONLY, NOSUID, NODEV, REMOUNT, BIND, REC, PRIVATE = 1, 2, 4, 32, 4096, 16384, 1 << 18
work = os.getcwd()
if "mnt" in got:
    mount(None, "/", None, REC | PRIVATE, None)
    keeps = [(sys.base_prefix, True), (work, False)]  # (path, read-only): seen through the covers
    fds = {k: os.open(k, os.O_PATH | os.O_DIRECTORY) for k, _ in keeps}
    for path in hide:
        mount(b"tmpfs", path, b"tmpfs", NOSUID | NODEV, b"size=64k,mode=0755")
        for keep, ro in keeps:
            if keep.startswith(path.rstrip("/") + "/"):
                os.makedirs(keep, exist_ok=True)
                mount(f"/proc/self/fd/{fds[keep]}".encode(), keep, None, BIND | REC, None)
                if ro:
                    mount(None, keep, None, REMOUNT | BIND | RDONLY | NOSUID | NODEV, None)
        mount(None, path, None, REMOUNT | RDONLY | NOSUID | NODEV, None)
    for f in fds.values():
        os.close(f)
    os.chdir(work)
    try:  # the root mount itself read-only (its other mounts, /proc and /dev among them, keep theirs)
        mount(None, "/", None, REMOUNT | BIND | RDONLY, None)
    except OSError:
        got.append("rw-root")
os.write(fd, (json.dumps({"nonce": nonce.decode(), "isolation": got}) + "\n").encode())
def wait_and_exit(pid):
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        signal.signal(os.WTERMSIG(status), signal.SIG_DFL)
        os.kill(os.getpid(), os.WTERMSIG(status))
    os._exit(os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 1)
pid = os.fork()
if pid:
    wait_and_exit(pid)
libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: die with the runner above (PID 1 of the namespace)
pid = os.fork()  # the program is PID 2: its parent is a root-owned reaper it cannot signal
if pid:
    wait_and_exit(pid)
libc.prctl(1, signal.SIGKILL)
R = resource
for res, value in ((R.RLIMIT_CPU, cpu), (R.RLIMIT_AS, mem), (R.RLIMIT_FSIZE, fsize),
                   (R.RLIMIT_NOFILE, nofile), (R.RLIMIT_NPROC, nproc), (R.RLIMIT_CORE, 0)):
    resource.setrlimit(res, (value, value))
if os.getuid() == 0:
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
def report(kind, error=""):
    os.write(fd, (json.dumps({"nonce": nonce.decode(), "kind": kind, "error": error[-300:]}) + "\n").encode())
    os._exit(0)
try:
    code = compile(source, "<program>", "exec")
except (SyntaxError, ValueError) as exc:
    report("syntax", f"{type(exc).__name__}: {exc}")
del data, source
try:
    exec(code, {"__name__": "__main__"})
except AssertionError as exc:
    report("assertion", f"AssertionError: {exc}")
except BaseException as exc:
    report("exception", f"{type(exc).__name__}: {exc}")
report("passed")
'''


def project_root() -> Path:
    return Path(__file__).resolve().parents[2]


def hidden_paths() -> list[str]:
    """Folders covered by empty tmpfs mounts in the sandbox: the repository, the working directory,
    the home directories. Existing folders only, outermost first, no duplicates."""
    candidates = [project_root(), Path.cwd(), Path.home(), Path("/root"), Path("/home"), Path("/tmp"),
                  Path("/var/tmp"), Path("/dev/shm"), Path(tempfile.gettempdir())]
    out: list[str] = []
    for p in sorted({str(c.resolve()) for c in candidates if c.is_dir() and str(c) != "/"}, key=len):
        if not any(p == o or p.startswith(o.rstrip("/") + "/") for o in out):
            out.append(p)
    return out


def _env(home: str) -> dict[str, str]:
    return {"HOME": home, "TMPDIR": home, "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8",
            "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1"}


def run_program(program: str, limits: Limits = Limits(), slot: int = 0) -> Outcome:
    """Run `program` (Python source) in the sandbox; its outcome. Never raises for what the program
    does; raises OSError only when the sandbox itself cannot start."""
    start = time.monotonic()
    root = os.getuid() == 0
    uid = gid = slot_uid(slot)
    work = tempfile.mkdtemp(prefix="codex-sandbox-")
    nonce = secrets.token_hex(16)
    hide = hidden_paths()
    read_end, write_end = os.pipe()
    try:
        os.chmod(work, 0o700)
        if root:
            os.chown(work, uid, gid)
        args = [sys.executable, "-I", "-S", "-c", _RUNNER, str(uid), str(gid), str(write_end),
                str(limits.cpu_seconds), str(limits.memory_bytes), str(limits.file_bytes),
                str(limits.open_files), str(limits.processes), *hide]
        proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                cwd=work, env=_env(work), start_new_session=True, pass_fds=(write_end,))
        os.close(write_end)
        write_end = -1
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(nonce.encode() + b"\n" + program.encode("utf-8", "surrogatepass"))
            proc.stdin.close()
        except BrokenPipeError:
            pass
        report, why = _collect(proc, read_end, limits, start, nonce)
        _kill_group(proc)
        status = proc.wait()
    finally:
        if write_end >= 0:
            os.close(write_end)
        os.close(read_end)
        shutil.rmtree(work, ignore_errors=True)
    seconds = time.monotonic() - start
    isolation = ",".join(str(n) for n in report.get("isolation", []))  # type: ignore[attr-defined]
    if why:
        return Outcome(why[0], why[1], seconds, isolation)
    if report.get("kind") in KINDS:
        return Outcome(str(report["kind"]), str(report.get("error", "")), seconds, isolation)
    if status < 0:
        sig = signal.Signals(-status)
        kind = "timeout" if sig == signal.SIGXCPU else "killed"
        return Outcome(kind, f"signal {sig.name}", seconds, isolation)
    return Outcome("killed", f"exited with status {status} without a report", seconds, isolation)


def _collect(proc: subprocess.Popen[bytes], result_fd: int, limits: Limits, start: float, nonce: str
             ) -> tuple[dict[str, object], tuple[str, str] | None]:
    """Read output (counted, discarded) and the report until both pipes close, the deadline passes
    or the output cap is crossed; (the report, or None; (kind, error) when the parent stopped it)."""
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ, "out")
    sel.register(result_fd, selectors.EVENT_READ, "result")
    output, result = 0, b""
    open_pipes = 2
    try:
        while open_pipes:
            left = limits.timeout - (time.monotonic() - start)
            if left <= 0:
                return _parse(result, nonce), ("timeout", f"wall clock over {limits.timeout:g} s")
            for key, _ in sel.select(timeout=left):
                fd = key.fileobj if isinstance(key.fileobj, int) else key.fileobj.fileno()
                chunk = os.read(fd, 65536)
                if not chunk:
                    sel.unregister(key.fileobj)
                    open_pipes -= 1
                elif key.data == "out":
                    output += len(chunk)
                    if output > limits.output_bytes:
                        return _parse(result, nonce), ("killed", f"output over {limits.output_bytes} bytes")
                elif len(result) < 65536:
                    result += chunk
    finally:
        sel.close()
    return _parse(result, nonce), None


def _parse(result: bytes, nonce: str) -> dict[str, object]:
    """The runner's lines with this run's nonce, merged (isolation first, then the outcome)."""
    out: dict[str, object] = {}
    for line in result.decode("utf-8", "replace").splitlines():
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(item, dict) and item.get("nonce") == nonce:
            out.update(item)
    return out


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def run_many(programs: list[str], limits: Limits = Limits(), workers: int = 0) -> list[Outcome]:
    """Outcomes of `programs`, in order, `workers` at a time (0: one per core). Threads only wait on
    pipes here; each program is its own process, so the cores do the work in parallel. Each worker
    thread owns a slot (its own uid as root), so one program's process limit never starves another's."""
    from concurrent.futures import ThreadPoolExecutor
    from queue import SimpleQueue

    workers = max(1, min(workers or os.cpu_count() or 1, len(programs) or 1))
    slots: SimpleQueue[int] = SimpleQueue()
    for slot in range(workers):
        slots.put(slot)

    def one(program: str) -> Outcome:
        slot = slots.get()
        try:
            return run_program(program, limits, slot)
        finally:
            slots.put(slot)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(one, programs))
