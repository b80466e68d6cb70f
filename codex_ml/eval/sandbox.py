"""A sandbox for generated code: each program runs in its own process, contained, and its outcome is
one of a few kinds. docs/humaneval.md says what it protects against and what it does not.

How one program runs (`run_program`):
1. The parent makes a fresh directory (the program's cwd, HOME and TMPDIR, 0700) and starts
   sandbox_child.py by path (`python -I -S`: no PYTHON* variables, no site-packages) with a minimal
   environment, in a new session (its own process group); stdin carries the setup (one JSON line:
   the filesystem plan, limits, uid, nonce) and the program, and is then closed.
2. The child enters new network, PID and mount namespaces (a user namespace too when not root),
   pivots into a fresh root that holds only the plan's paths (`filesystem_plan`: the standard library
   and its shared libraries read-only, /dev/null, /dev/urandom) and the program's directory, and runs
   the program under PID 1 of its namespace with a fresh /proc, rlimits and no privileges.
3. The parent reads output up to a cap (over it: killed), kills the whole process group at the
   wall-clock limit or at the end (and with it, via the PID namespace, every process the program
   started, even ones that left the group), and removes the directory.

Kinds: passed, assertion (AssertionError), exception (any other exception: MemoryError, SystemExit
and PermissionError included), syntax (the program does not compile), timeout (wall clock or CPU
limit), killed (a signal, an exit without a report such as os._exit, or output over the cap).
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from codex_ml.eval.sandbox_child import encode_input, parse_reports

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
    error_type: str  # the exception's class name ("" when passed, timed out or killed)
    error: str  # the exception's text, the signal or limit, or "" when passed
    seconds: float
    isolation: str  # which namespaces the kernel gave: "net,pid,mnt" or a subset, "" for none

    @property
    def passed(self) -> bool:
        return self.kind == "passed"


CHILD = Path(__file__).with_name("sandbox_child.py")
DEVICES = ("/dev/null", "/dev/urandom")
# Extension modules for a display, a terminal or a system service: their libraries (X11, Tk, curses,
# NIS with Kerberos, OSS audio, shadow passwords) stay out, and importing them fails in the sandbox.
NO_LIBRARIES_FOR = ("_tkinter", "_curses", "_curses_panel", "readline", "nis", "ossaudiodev", "spwd")


class SandboxUnavailable(OSError):
    """The sandbox cannot start here (a kernel that refuses the namespaces, a missing tool)."""


def shared_libraries(files: list[str]) -> list[str]:
    """The shared libraries the dynamic loader resolves for `files` (ldd's answer), sorted."""
    try:
        out = subprocess.run(["ldd", *files], capture_output=True, text=True, env={"LC_ALL": "C"},
                             check=False).stdout
    except FileNotFoundError:
        raise SandboxUnavailable("ldd not found: the sandbox lists the interpreter's shared libraries "
                                 "with it (Debian package libc-bin)") from None
    libs = set()
    for line in out.splitlines():
        line = line.strip()
        if line.endswith(":") or "not found" in line:
            continue  # a file's header line; a library the loader cannot find
        path = line.split("=>")[-1].strip().split(" (")[0]
        if path.startswith("/"):
            libs.add(path)
    return sorted(libs)


def _mirror(path: str, plan: list[tuple[str, str, str]], made: set[str]) -> str:
    """Plan the directories and symlinks that make `path` resolve inside the sandbox as it does
    outside; its real path (where the bind mount goes)."""
    parts, real, hops = [p for p in path.split("/") if p], "", 0
    while parts:
        here = f"{real}/{parts.pop(0)}"
        if os.path.islink(here):
            hops += 1
            if hops > 40:
                raise SandboxUnavailable(f"{path}: too many symlinks")
            target = os.readlink(here)
            if here not in made:
                made.add(here)
                plan.append(("link", here, target))
            base = target if target.startswith("/") else f"{real}/{target}"
            parts, real = [p for p in os.path.normpath(base).split("/") if p] + parts, ""
        else:
            if parts and here not in made:
                made.add(here)
                plan.append(("dir", here, ""))
            real = here
    return real or "/"


@functools.cache
def filesystem_plan() -> tuple[tuple[str, str, str], ...]:
    """What the program sees besides its own directory and /proc: the standard library (read-only,
    its site-packages covered by an empty tmpfs), the shared libraries its extension modules and the
    interpreter load, /dev/null and /dev/urandom. Steps (op, path, arg) for sandbox_child.build_root."""
    paths = sysconfig.get_paths(vars={"base": sys.base_prefix, "platbase": sys.base_exec_prefix})
    stdlib = sorted({os.path.realpath(paths["stdlib"]), os.path.realpath(paths["platstdlib"])})
    dynload = Path(sysconfig.get_config_var("DESTSHARED") or Path(stdlib[0]) / "lib-dynload")
    modules = sorted(str(p) for p in dynload.glob("*.so") if p.name.split(".")[0] not in NO_LIBRARIES_FOR)
    plan: list[tuple[str, str, str]] = []
    made: set[str] = set()
    for path, op in ([(p, "ro") for p in stdlib] + [(str(dynload), "ro")]
                     + [(lib, "ro") for lib in shared_libraries([os.path.realpath(sys.executable), *modules])]
                     + [(d, "dev") for d in DEVICES]):
        real = _mirror(path, plan, made)
        if real not in made and not any(real.startswith(f"{s}/") for s in stdlib):
            made.add(real)
            plan.append((op, real, ""))
    for root in stdlib:
        for name in ("site-packages", "dist-packages"):
            if os.path.isdir(f"{root}/{name}"):
                plan.append(("empty", f"{root}/{name}", ""))
    return tuple(plan)


def _env(home: str) -> dict[str, str]:
    return {"HOME": home, "TMPDIR": home, "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8",
            "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1"}


def run_program(program: str, limits: Limits = Limits(), slot: int = 0) -> Outcome:
    """Run `program` (Python source) in the sandbox; its outcome. Never raises for what the program
    does; raises SandboxUnavailable when the sandbox itself cannot start."""
    start = time.monotonic()
    root = os.getuid() == 0
    uid = gid = slot_uid(slot) if root else os.getuid()
    box = tempfile.mkdtemp(prefix="codex-sandbox-")  # its stage (the new root's mount point) and work
    work, stage = f"{box}/work", f"{box}/root"
    nonce = secrets.token_hex(16)
    read_end, write_end = os.pipe()
    try:
        os.mkdir(stage)
        os.mkdir(work, 0o700)
        if root:
            os.chown(work, uid, gid)
        plan: list[tuple[str, str, str]] = list(filesystem_plan())
        _mirror(work, plan, set())
        plan.append(("rw", work, ""))
        setup = {"nonce": nonce, "uid": uid, "gid": gid, "result_fd": write_end, "stage": stage, "work": work,
                 "plan": plan, "limits": {"cpu": limits.cpu_seconds, "memory": limits.memory_bytes,
                                          "fsize": limits.file_bytes, "nofile": limits.open_files,
                                          "nproc": limits.processes}}
        proc = subprocess.Popen([sys.executable, "-I", "-S", str(CHILD)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=work, env=_env(work),
                                start_new_session=True, pass_fds=(write_end,))
        os.close(write_end)
        write_end = -1
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(encode_input(setup, program.encode("utf-8", "surrogatepass")))
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
        shutil.rmtree(box, ignore_errors=True)
    if "setup_error" in report:
        raise SandboxUnavailable(f"the sandbox cannot start: {report['setup_error'][0]}" + (
            "" if root else " (as a non-root user it needs unprivileged user namespaces: "
            "sysctl user.max_user_namespaces > 0, and kernel.unprivileged_userns_clone = 1 or "
            "kernel.apparmor_restrict_unprivileged_userns = 0 where those exist)"))
    seconds = time.monotonic() - start
    isolation = report.get("isolation", [""])[0]
    if why:
        return Outcome(why[0], "", why[1], seconds, isolation)
    kind, error_type, error = [*report.get("outcome", []), "", "", ""][:3]
    if kind in KINDS:
        return Outcome(kind, error_type, error, seconds, isolation)
    if status < 0:
        sig = signal.Signals(-status)
        kind = "timeout" if sig == signal.SIGXCPU else "killed"
        return Outcome(kind, "", f"signal {sig.name}", seconds, isolation)
    return Outcome("killed", "", f"exited with status {status} without a report", seconds, isolation)


def _collect(proc: subprocess.Popen[bytes], result_fd: int, limits: Limits, start: float, nonce: str
             ) -> tuple[dict[str, list[str]], tuple[str, str] | None]:
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
                return parse_reports(result, nonce), ("timeout", f"wall clock over {limits.timeout:g} s")
            for key, _ in sel.select(timeout=left):
                fd = key.fileobj if isinstance(key.fileobj, int) else key.fileobj.fileno()
                chunk = os.read(fd, 65536)
                if not chunk:
                    sel.unregister(key.fileobj)
                    open_pipes -= 1
                elif key.data == "out":
                    output += len(chunk)
                    if output > limits.output_bytes:
                        why = ("killed", f"output over {limits.output_bytes} bytes")
                        return parse_reports(result, nonce), why
                elif len(result) < 65536:
                    result += chunk
    finally:
        sel.close()
    return parse_reports(result, nonce), None


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
