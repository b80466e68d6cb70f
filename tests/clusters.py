"""Real services on loopback for the tests past one machine: a Ray cluster (`ray start --head`), a
single-node Slurm (munged, slurmctld and slurmd from Debian's packages) and moto's standalone S3 server.

Each is started once per test session by the fixture that needs it (tests/conftest.py), in its own
process session, and stopped at teardown, on failure too: every process of that session is killed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil

from tests.conftest import ROOT, VENV_BIN, subprocess_env

# Ray on loopback only: Linux's default is the address other nodes would reach; this is Ray's own
# switch to the loopback address (it also drops usage reporting, which would go to the internet).
RAY_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}

SLURM_DAEMONS = ("munged", "slurmctld", "slurmd")
SYSTEM_DEPS_HINT = ("install them with `make system-deps` (Debian: apt-get install slurmctld slurmd "
                    "slurm-client munge)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(ready: Callable[[], bool], what: str, timeout: float, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-3000:] if log and log.is_file() else ""
            raise RuntimeError(f"{what} not ready after {timeout:.0f} s\n{tail}")
        time.sleep(0.3)


def start(cmd: list[str], log: Path, **env: str) -> subprocess.Popen[bytes]:
    """A service in a new process session (so teardown finds every process it forked)."""
    with open(log, "ab") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=subprocess_env(**env), start_new_session=True)


def stop(procs: list[subprocess.Popen[bytes]], grace: float = 3.0) -> None:
    """SIGTERM each service, then SIGKILL whatever is left of their sessions (Ray's workers, a Slurm
    job's steps): nothing started by a fixture outlives the test session."""
    sessions = {p.pid for p in procs}
    for p in procs:
        with contextlib.suppress(ProcessLookupError):
            p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(p.poll() is None for p in procs):
        time.sleep(0.1)
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error, ProcessLookupError, PermissionError):
            if os.getsid(proc.pid) in sessions:
                proc.kill()
    for p in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(timeout=10)


# ---------------------------------------------------------------------------------------------- Ray

@contextlib.contextmanager
def ray_cluster(num_cpus: int = 2) -> Iterator[str]:
    """`ray start --head` on 127.0.0.1; yields its address (what data.ray.address takes)."""
    os.environ.update(RAY_ENV)  # before this process imports ray, which reads them once
    import ray

    # Short folder: Ray's unix sockets live under it and their paths must stay under 108 bytes.
    temp = Path(tempfile.mkdtemp(prefix="codex-ray-", dir="/tmp"))
    port = free_port()
    address = f"127.0.0.1:{port}"
    proc = start([str(VENV_BIN / "ray"), "start", "--head", "--block", f"--num-cpus={num_cpus}",
                  f"--port={port}", f"--temp-dir={temp}", "--include-dashboard=false",
                  "--disable-usage-stats"], temp / "ray-start.log",
                 PYTHONPATH=str(ROOT), **RAY_ENV)  # workers import the tests' own task wrappers
    try:
        wait_for(lambda: _ray_up(address, proc), f"ray start --head ({address})", 120, temp / "ray-start.log")
        yield address
    finally:
        if ray.is_initialized():
            ray.shutdown()
        stop([proc])
        shutil.rmtree(temp, ignore_errors=True)


def _ray_up(address: str, proc: subprocess.Popen[bytes]) -> bool:
    if proc.poll() is not None:
        raise RuntimeError(f"ray start exited {proc.returncode}")
    probe = subprocess.run([str(VENV_BIN / "python"), "-c",
                            f"import ray; ray.init(address={address!r}, logging_level='ERROR'); "
                            "assert ray.cluster_resources().get('CPU')"],
                           env=subprocess_env(**RAY_ENV), capture_output=True, timeout=60, check=False)
    return probe.returncode == 0


def kill_own_worker_once(marker: Path, rank_to_kill: int, work: Callable[[int, int], None],
                         rank: int, world_size: int) -> None:
    """A datatrove task's work that, the first time task `rank_to_kill` runs, SIGKILLs the Ray worker
    running it mid-task (as a lost node would), then does the real work on every later try."""
    if rank == rank_to_kill and not marker.exists():
        marker.write_text(str(os.getpid()))
        # The task runs in a process forked by the Ray worker (datatrove's RankWorker pool).
        os.kill(os.getppid(), signal.SIGKILL)
        os._exit(1)
    work(rank, world_size)


# -------------------------------------------------------------------------------------------- Slurm

SLURM_CONF = """\
ClusterName=codexml
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser={user}
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={root}/munge/munge.socket
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
# No cgroups: processes are tracked by their parent ids, tasks are not confined.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
MpiDefault=none
SwitchType=switch/none
NodeName=localnode NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={mem_mb} State=UNKNOWN
PartitionName=debug Nodes=localnode Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
"""


def check_slurm_installed() -> None:
    missing = [d for d in (*SLURM_DAEMONS, "mungekey", "sbatch", "squeue") if shutil.which(d) is None
               and not Path("/usr/sbin", d).is_file()]
    if missing:
        raise RuntimeError(f"Slurm's {', '.join(missing)} not found: the Slurm tests run a real single-node "
                           f"Slurm; {SYSTEM_DEPS_HINT}")


def _sbin(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


@contextlib.contextmanager
def slurm_cluster(cpus: int = 2, mem_mb: int = 8000) -> Iterator[dict[str, str]]:
    """munged + slurmctld + slurmd on 127.0.0.1, one node (`localnode`), partition `debug`; yields the
    environment a client needs (SLURM_CONF). Must run as root (slurmd starts jobs as their user)."""
    check_slurm_installed()
    if os.geteuid() != 0:
        raise RuntimeError("slurmd must run as root to start jobs (CI runs as root): run the Slurm tests "
                           "as root")
    root = Path(tempfile.mkdtemp(prefix="codex-slurm-", dir="/tmp"))
    for sub in ("state", "spool", "log", "munge"):
        (root / sub).mkdir(mode=0o700)
    root.chmod(0o755)  # munged wants the socket's folder reachable by every client
    (root / "munge").chmod(0o755)
    key = root / "munge" / "munge.key"
    subprocess.run([_sbin("mungekey"), "--create", f"--keyfile={key}", "--force"], check=True,
                   capture_output=True)
    key.chmod(0o600)
    conf = root / "slurm.conf"
    conf.write_text(SLURM_CONF.format(root=root, ctld_port=free_port(), slurmd_port=free_port(), user="root",
                                      cpus=cpus, mem_mb=mem_mb))
    env = {"SLURM_CONF": str(conf)}
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs.append(start([_sbin("munged"), "--foreground", "--force", f"--socket={root}/munge/munge.socket",
                            f"--key-file={key}", f"--pid-file={root}/munge/munged.pid",
                            f"--log-file={root}/log/munged.log", f"--seed-file={root}/munge/seed"],
                           root / "log" / "munged.out"))
        log = root / "log"
        wait_for(lambda: (root / "munge" / "munge.socket").exists(), "munged", 30, log / "munged.log")
        procs.append(start([_sbin("slurmctld"), "-D", "-i", "-f", str(conf)], log / "slurmctld.out", **env))
        procs.append(start([_sbin("slurmd"), "-D", "-N", "localnode", "-f", str(conf)], log / "slurmd.out",
                           **env))
        wait_for(lambda: _slurm_idle(env, procs), "Slurm's node localnode", 60, root / "log" / "slurmd.log")
        yield env
    finally:
        stop(procs)
        shutil.rmtree(root, ignore_errors=True)


def _slurm_idle(env: dict[str, str], procs: list[subprocess.Popen[bytes]]) -> bool:
    for p in procs:
        if p.poll() is not None:
            raise RuntimeError(f"{p.args[0]} exited {p.returncode}")  # type: ignore[index]
    out = subprocess.run(["sinfo", "--noheader", "--format=%t"], env=subprocess_env(**env),
                         capture_output=True, text=True, check=False)
    return out.returncode == 0 and out.stdout.strip() in ("idle", "mix", "alloc")


# ----------------------------------------------------------------------------------------------- S3

@contextlib.contextmanager
def moto_s3() -> Iterator[dict[str, str]]:
    """moto's standalone server on 127.0.0.1: a real S3 API (in memory). Yields the environment a user
    sets for an S3-compatible store: credentials and the endpoint."""
    port = free_port()
    folder = Path(tempfile.mkdtemp(prefix="codex-moto-", dir="/tmp"))
    proc = start([str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], folder / "moto.log")
    endpoint = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _http_up(endpoint, proc), "moto_server", 60, folder / "moto.log")
        yield {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint}
    finally:
        stop([proc])
        shutil.rmtree(folder, ignore_errors=True)


def _http_up(url: str, proc: subprocess.Popen[bytes]) -> bool:
    import urllib.request

    if proc.poll() is not None:
        raise RuntimeError(f"moto_server exited {proc.returncode}")
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except OSError:
        return False


# ------------------------------------------------------------- prepare + tokenize under DVC, any executor

def engine_repo(root: Path, corpus: Path) -> Path:
    """A real git+DVC repository of the pipeline whose prepare reads `corpus` (a small folder)."""
    from tests.conftest import new_repo

    return new_repo(root, {"data": {"source": "dir", "path": str(corpus), "val_fraction": 0.15,
                                    "test_fraction": 0.15},
                           "tokenizer": {"vocab_size": 600}})


def repro_on(repo: Path, executor: str, env: dict[str, str],
             **data: object) -> tuple[dict[str, str], dict[str, bytes]]:
    """`dvc repro tokenize` with prepare and tokenize as 3 datatrove tasks on `executor`; returns the
    md5 of each output as dvc.lock records it, and every output file's bytes. Prints the wall time
    (`pytest -s` shows it: docs/scaling.md's costs)."""
    import yaml

    from tests.conftest import merge, run

    params = yaml.safe_load((repo / "params.yaml").read_text())
    params = merge(params, {"data": {"engine": "datatrove", "tasks": 3, "workers": 2, "executor": executor,
                                     **data},
                            "tokenizer": {"engine": "datatrove"}})
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    started = time.perf_counter()
    ran = run(["dvc", "repro", "tokenize"], repo, **env).stdout
    print(f"dvc repro tokenize, data.executor {executor}: {time.perf_counter() - started:.1f} s")
    assert "Running stage 'prepare'" in ran and "Running stage 'tokenize'" in ran, ran
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    assert lock["prepare"]["params"]["params.yaml"]["data"]["executor"] == executor
    md5 = {o["path"]: o["md5"] for s in ("prepare", "tokenize") for o in lock[s]["outs"]}
    files = {p.relative_to(repo).as_posix(): p.read_bytes()
             for o in md5 for p in sorted((repo / o).rglob("*")) if p.is_file()}
    files.update({o: (repo / o).read_bytes() for o in md5 if (repo / o).is_file()})
    return md5, files
