"""The sandbox's child: eval/sandbox.py runs this file by path (`python -I -S sandbox_child.py`) for
each program. Standard library only, and only modules that load fast (no json, re or typing: their
imports would cost more than the rest of the setup).

stdin: the setup (nonce, uid/gid, rlimits, the filesystem plan, the result pipe) as a decimal length
line and a `marshal` blob, then the program's source. On the result pipe it writes lines of
space-separated fields, the nonce first, then a tag and hex-encoded text (`report`). What it does:
1. Asks for new network, PID, mount, IPC (no System V objects of the host), UTS (hostname
   "sandbox") and cgroup namespaces; as a non-root user inside a new user namespace, mapping only its
   own uid and gid. Refused: it reports the kernel's error and the parent raises.
2. Builds the program's filesystem in a fresh tmpfs from the plan (directories, symlinks, read-only
   bind mounts of the standard library, its shared libraries, /dev/null and /dev/urandom; empty
   read-only tmpfs over site-packages; the program's directory, writable), makes it the root
   (pivot_root) and detaches the old root: nothing else of the machine is reachable by path.
   This and the rest happen in PID 1 of the new PID namespace, a reaper that dies with this process
   and mounts the fresh /proc: only the processes the reader may trace (hidepid=invisible), and no
   kernel files (subset=pid).
3. The reaper forks the program: rlimits, the slot's uid/gid (root) or no capabilities (user
   namespace), no new privileges; then compile, exec, and its outcome on the result pipe.
"""

from __future__ import annotations

import ctypes
import marshal
import os
import resource
import signal
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, BinaryIO

# Kernel interface numbers Python 3.11's `os` does not name, from the Linux UAPI headers.
CLONE_NEWNS = 0x00020000  # <linux/sched.h>
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_RDONLY = 0x1  # <linux/mount.h>
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
MS_RELATIME = 0x200000
MNT_DETACH = 0x2
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
PR_SET_DUMPABLE = 4
PR_SET_NO_NEW_PRIVS = 38
LINUX_CAPABILITY_VERSION_3 = 0x20080522  # <linux/capability.h>
# pivot_root(2) has no glibc wrapper: its system call number per machine (<asm/unistd.h>).
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41, "ppc64le": 203, "s390x": 217}
# A remount inside a user namespace must keep the flags the source mount has (the kernel locks
# them): statvfs's flag (os.ST_*) -> the mount flag that keeps it.
KEPT_FLAGS = ((os.ST_NOSUID, MS_NOSUID), (os.ST_NODEV, MS_NODEV), (os.ST_NOEXEC, MS_NOEXEC),
              (os.ST_NOATIME, MS_NOATIME), (os.ST_NODIRATIME, MS_NODIRATIME),
              (os.ST_RELATIME, MS_RELATIME))
# What each plan step makes at its path inside the new root ("ro", "dev", "rw": a bind mount of the
# same path outside; "empty": a read-only tmpfs; "dir", "link": a directory, a symlink to `arg`).
BIND_FLAGS = {"ro": MS_RDONLY | MS_NOSUID | MS_NODEV, "dev": MS_RDONLY | MS_NOSUID,
              "rw": MS_NOSUID | MS_NODEV | MS_NOEXEC}
PROC_OPTIONS = b"hidepid=invisible,subset=pid"
MESSAGE_CHARS = 2000  # of an exception's text sent to the parent (which redacts and shortens it)


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


class Kernel:
    """The few libc calls the standard library lacks, raising OSError with the call's errno."""

    def __init__(self) -> None:
        self.libc = ctypes.CDLL(None, use_errno=True)

    def _check(self, result: int, what: str) -> None:
        if result != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"{what}: {os.strerror(err)}")

    def unshare(self, flags: int) -> None:
        self._check(self.libc.unshare(flags), f"unshare({flags:#x})")

    def mount(self, source: str | None, target: str, fstype: str | None, flags: int,
              options: bytes | None = None) -> None:
        self._check(self.libc.mount(source and source.encode(), target.encode(),
                                    fstype and fstype.encode(), flags, options), f"mount {target}")

    def umount(self, target: str, flags: int) -> None:
        self._check(self.libc.umount2(target.encode(), flags), f"umount {target}")

    def pivot_root(self, new_root: str, put_old: str) -> None:
        number = SYS_PIVOT_ROOT.get(os.uname().machine)
        if number is None:
            raise OSError(0, f"pivot_root: system call number unknown on {os.uname().machine}")
        self._check(self.libc.syscall(number, new_root.encode(), put_old.encode()), "pivot_root")

    def sethostname(self, name: str) -> None:
        self._check(self.libc.sethostname(name.encode(), len(name)), "sethostname")

    def prctl(self, option: int, value: int) -> None:
        self._check(self.libc.prctl(option, value, 0, 0, 0), f"prctl({option})")

    def drop_capabilities(self) -> None:
        data = (_CapData * 2)()
        header = _CapHeader(LINUX_CAPABILITY_VERSION_3, 0)
        self._check(self.libc.capset(ctypes.byref(header), ctypes.byref(data)), "capset")


def encode_input(setup: dict[str, Any], source: bytes) -> bytes:
    """What the parent writes to the child's stdin."""
    blob = marshal.dumps(setup)
    return b"%d\n" % len(blob) + blob + source


def read_input(stream: BinaryIO) -> tuple[dict[str, Any], bytes]:
    """(the setup, the program's source) from the parent's stdin."""
    data = stream.read()
    size, _, rest = data.partition(b"\n")
    return marshal.loads(rest[:int(size)]), rest[int(size):]


def report(fd: int, nonce: str, tag: str, *texts: str) -> None:
    """One line on the result pipe: the nonce, the tag, each text hex-encoded (any characters)."""
    fields = [nonce, tag, *(t.encode("utf-8", "replace").hex() for t in texts)]
    os.write(fd, (" ".join(fields) + "\n").encode())


def parse_reports(data: bytes, nonce: str) -> dict[str, list[str]]:
    """The parent's reading of the result pipe: tag -> texts, from lines with this run's nonce."""
    out: dict[str, list[str]] = {}
    for line in data.decode("ascii", "replace").splitlines():
        fields = line.split(" ")
        if len(fields) >= 2 and fields[0] == nonce:
            try:
                out[fields[1]] = [bytes.fromhex(f).decode("utf-8", "replace") for f in fields[2:]]
            except ValueError:
                continue
    return out


def enter_namespaces(kernel: Kernel, as_root: bool) -> list[str]:
    """New net, PID, mount, IPC, UTS and cgroup namespaces (and a user namespace when not root);
    their names."""
    uid, gid = os.getuid(), os.getgid()
    flags = CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP
    kernel.unshare(flags if as_root else flags | CLONE_NEWUSER)
    if not as_root:  # map only this user: the sandbox's files and processes keep their owner
        maps = (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1"))
        for name, text in maps:
            with open(f"/proc/self/{name}", "w") as f:
                f.write(text)
    kernel.sethostname("sandbox")  # not the machine's name
    return ([] if as_root else ["user"]) + ["net", "pid", "mnt", "ipc", "uts", "cgroup"]


def kept_flags(path: str) -> int:
    """The mount flags of the mount `path` is on that a remount of a bind of it must keep."""
    have = os.statvfs(path).f_flag
    return sum(flag for st, flag in KEPT_FLAGS if have & st)


def build_root(kernel: Kernel, stage: str, plan: list[list[str]]) -> bool:
    """The program's filesystem, made in a fresh tmpfs at `stage` from `plan`, then made the root
    (called as PID 1 of the new PID namespace). Whether it got a fresh /proc."""
    kernel.mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing done here propagates out
    kernel.mount("tmpfs", stage, "tmpfs", MS_NOSUID | MS_NODEV, b"size=1m,nr_inodes=4096,mode=0755")
    for op, path, arg in plan:
        inside = stage + path
        if op == "dir":
            os.makedirs(inside, 0o755, exist_ok=True)
        elif op == "link":
            os.symlink(arg, inside)
        elif op == "empty":
            kernel.mount("tmpfs", inside, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV, b"size=4k,mode=0755")
        else:  # a bind mount of the same path outside, read-only unless "rw"
            if os.path.isdir(path):
                os.makedirs(inside, 0o755, exist_ok=True)
            elif not os.path.exists(inside):
                os.close(os.open(inside, os.O_CREAT | os.O_WRONLY, 0o444))
            kernel.mount(path, inside, None, MS_BIND)
            kernel.mount(None, inside, None, MS_REMOUNT | MS_BIND | BIND_FLAGS[op] | kept_flags(path))
    os.makedirs(stage + "/proc", 0o555, exist_ok=True)
    proc = mount_proc(kernel, stage + "/proc")  # before the old root goes: the kernel lets a user
    os.chdir(stage)  # namespace mount proc only while a full /proc is visible in its mount namespace
    kernel.pivot_root(".", ".")  # the old root is stacked under the new one ...
    kernel.umount(".", MNT_DETACH)  # ... and detached: no path leads to it any more
    os.chdir("/")
    kernel.mount(None, "/", None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
    return proc


def mount_proc(kernel: Kernel, target: str) -> bool:
    """A fresh /proc of this PID namespace at `target`; False when the kernel refuses (then the
    program has no /proc at all)."""
    try:
        kernel.mount("proc", target, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, PROC_OPTIONS)
    except OSError:
        return False
    return True


def confine(kernel: Kernel, setup: dict[str, Any], as_root: bool) -> None:
    """Limits and identity of the program's process, before its code runs."""
    kernel.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    limits = setup["limits"]
    for res, value in ((resource.RLIMIT_CPU, limits["cpu"]), (resource.RLIMIT_AS, limits["memory"]),
                       (resource.RLIMIT_FSIZE, limits["fsize"]), (resource.RLIMIT_NOFILE, limits["nofile"]),
                       (resource.RLIMIT_NPROC, limits["nproc"]), (resource.RLIMIT_CORE, 0)):
        resource.setrlimit(res, (value, value))
    if as_root:
        os.setgroups([])
        os.setgid(setup["gid"])
        os.setuid(setup["uid"])
    kernel.drop_capabilities()  # a no-op after setuid; in a user namespace it drops the full set
    kernel.prctl(PR_SET_NO_NEW_PRIVS, 1)


def wait_and_exit(pid: int) -> None:
    """Wait for `pid` and end the same way: its exit code, or killed by its signal."""
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        signal.signal(os.WTERMSIG(status), signal.SIG_DFL)
        os.kill(os.getpid(), os.WTERMSIG(status))
    os._exit(os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 1)


def run(source: bytes, fd: int, nonce: str) -> None:
    """Compile and execute the program; report its outcome kind, exception type and message."""

    def outcome(kind: str, exc: BaseException | None = None) -> None:
        if exc is None:
            report(fd, nonce, "outcome", kind, "", "")
        else:
            report(fd, nonce, "outcome", kind, type(exc).__name__, str(exc)[:MESSAGE_CHARS])
        os._exit(0)

    try:
        code = compile(source, "<program>", "exec")
    except (SyntaxError, ValueError) as exc:
        outcome("syntax", exc)
    del source
    try:
        exec(code, {"__name__": "__main__"})
    except AssertionError as exc:
        outcome("assertion", exc)
    except BaseException as exc:
        outcome("exception", exc)
    outcome("passed")


def main() -> None:
    setup, source = read_input(sys.stdin.buffer)
    null = os.open("/dev/null", os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    fd, nonce, as_root = setup["result_fd"], setup["nonce"], os.getuid() == 0
    kernel = Kernel()
    try:
        got = enter_namespaces(kernel, as_root)
    except OSError as exc:
        report(fd, nonce, "setup_error", str(exc))
        os._exit(1)
    pid = os.fork()
    if pid:
        wait_and_exit(pid)
    # PID 1 of the namespace: a root-owned (or non-dumpable) reaper the program cannot signal or trace.
    try:
        kernel.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        kernel.prctl(PR_SET_DUMPABLE, 0)
        if build_root(kernel, setup["stage"], setup["plan"]):
            got.append("proc")
        os.chdir(setup["work"])
    except OSError as exc:
        report(fd, nonce, "setup_error", str(exc))
        os._exit(1)
    report(fd, nonce, "isolation", ",".join(got))
    pid = os.fork()
    if pid:
        wait_and_exit(pid)
    confine(kernel, setup, as_root)
    run(source, fd, nonce)


if __name__ == "__main__":
    main()
