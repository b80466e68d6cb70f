"""An attacker's probes of the sandbox, for tests/test_sandbox.py: `probe_program` is a program that
runs inside it and fails (AssertionError naming what it saw) on any way out of the allowlisted view;
`expected_tree` is that view, computed outside from the sandbox's own filesystem plan.

Standard library only: test_sandbox.py also runs it as an unprivileged user with a plain interpreter.
"""

from __future__ import annotations

import inspect
import os
import sys

from codex_ml.eval.sandbox import filesystem_plan

ENV_KEYS = ["HOME", "LANG", "PATH", "PYTHONDONTWRITEBYTECODE", "PYTHONHASHSEED", "TMPDIR"]


def expected_tree() -> list[str]:
    """Every path the program may see outside its own directory and /proc: the plan's directories,
    symlinks and mount points, and everything under a bound directory (sorted)."""
    out = {"/proc"}
    plan = filesystem_plan()
    covered = [path for op, path, _ in plan if op == "empty"]
    for op, path, _ in plan:
        out.add(path)
        if op == "ro" and os.path.isdir(path):
            for folder, dirs, files in os.walk(path):
                out.update(f"{folder}/{name}" for name in dirs + files)
                dirs[:] = [d for d in dirs if f"{folder}/{d}" not in covered]  # shown empty
    return sorted(out)


def probe(secret_path: str, secret: str, expected: list[str], env_keys: list[str]) -> None:
    """Runs inside the sandbox. Each check is one hole an attacker would try."""
    import os

    # A file of another tree, by absolute path.
    assert not os.path.exists(secret_path), secret_path
    try:
        with open(secret_path) as f:
            raise AssertionError(f"read {secret_path}: {f.read()[:40]}")
    except FileNotFoundError:
        pass
    work = os.getcwd()
    # The tree, walked before the probe writes anything: exactly the allowlist, plus the program's
    # own directory and the directories above it. A .pyc another process compiled into the standard
    # library after `expected` was taken is the only tolerated difference.
    chain = {work}
    up = os.path.dirname(work)
    while up != "/":
        chain.add(up)
        up = os.path.dirname(up)
    seen = set()
    for folder, dirs, files in os.walk("/"):
        seen.update(os.path.join(folder, name) for name in dirs + files)
        if folder == "/":
            dirs.remove("proc")  # checked on its own below
    seen -= chain
    extra = sorted(p for p in seen - set(expected) - chain if "/__pycache__/" not in p)
    missing = sorted(set(expected) - chain - seen)
    assert not extra and not missing, f"visible beyond the allowlist: {extra[:5]}; missing: {missing[:5]}"
    # / and /etc.
    top = sorted(os.listdir("/"))
    assert all(p in expected or p in chain for p in ["/" + name for name in top]), top
    assert not os.path.exists("/etc") and not os.path.exists("/etc/passwd"), "/etc is visible"
    # /proc: this process and nothing else (no parent, no reaper, no host process).
    pids = sorted(name for name in os.listdir("/proc") if name.isdigit())
    assert pids == [str(os.getpid())], f"processes visible: {pids}"
    for pid in range(1, 64):
        if pid != os.getpid() and os.path.exists(f"/proc/{pid}/cmdline"):
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                raise AssertionError(f"/proc/{pid}/cmdline: {f.read()[:80]!r}")
    assert not os.path.exists("/proc/sys") and not os.path.exists("/proc/kcore"), "kernel files in /proc"
    # The machine's name, environment variables.
    assert os.uname().nodename == "sandbox", os.uname().nodename
    assert sorted(os.environ) == env_keys, sorted(os.environ)
    assert all(secret not in value for value in os.environ.values()), "the secret is in the environment"
    try:  # unreadable where the program is not dumpable (after its setuid)
        with open("/proc/self/environ", "rb") as f:
            assert secret.encode() not in f.read(), "the secret is in /proc/self/environ"
    except PermissionError:
        pass
    # /proc/self/root and symlinks out: they resolve inside the new root.
    assert sorted(os.listdir("/proc/self/root")) == top
    assert sorted(os.listdir("/proc/self/root/..")) == top
    assert not os.path.exists("/proc/self/root" + secret_path)
    os.symlink(secret_path, "out")
    os.symlink("/proc/self/root/../../..", "up")
    assert not os.path.exists("out") and sorted(os.listdir("up")) == top
    try:
        with open("out") as f:
            raise AssertionError(f"read through a symlink: {f.read()[:40]}")
    except FileNotFoundError:
        pass
    # Nothing outside its directory is writable, not even the allowlisted files.
    for path in ("/newfile", "/dev/newfile", os.__file__, os.path.dirname(os.__file__) + "/new.py"):
        try:
            open(path, "a").close()
            raise AssertionError(f"wrote {path}")
        except OSError:
            pass


def probe_program(secret_path: str, secret: str) -> str:
    """The probe as a program for the sandbox (its source, then the call with what it checks)."""
    args = (secret_path, secret, expected_tree(), ENV_KEYS)
    return inspect.getsource(sys.modules[__name__].probe) + f"\nprobe(*{args!r})\n"
