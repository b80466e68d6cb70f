"""Shared fixtures: small real corpora and real git+DVC repositories in temporary folders."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from codex_ml.kernels import pin

# The CPU kernels the params' default (train.kernels, eval.kernels: avx2) names, pinned before any test
# module loads torch, as the stage scripts pin them: in-process training and eval check them.
pin("avx2")

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent

# Real stdlib modules of moderate size: a small, real code corpus for fast tests.
SAMPLE_MODULES = [
    "abc.py", "bisect.py", "calendar.py", "colorsys.py", "copy.py", "csv.py", "dataclasses.py",
    "difflib.py", "enum.py", "fnmatch.py", "fractions.py", "functools.py", "getopt.py", "glob.py",
    "graphlib.py", "heapq.py", "keyword.py", "linecache.py", "numbers.py", "operator.py",
    "pprint.py", "queue.py", "random.py", "sched.py", "secrets.py", "shlex.py", "statistics.py",
    "string.py", "textwrap.py", "tokenize.py", "types.py", "uuid.py", "weakref.py",
    "json/__init__.py", "json/decoder.py", "json/encoder.py", "json/scanner.py",
    "collections/__init__.py", "email/utils.py", "email/header.py",
]


def stage_command(name: str) -> list[str]:
    """Stage `name` as dvc.yaml runs it: `python -m stages.<name>` from the folder it works in. From a
    folder that is no checkout, run it with PYTHONPATH=ROOT so the `stages` package is found."""
    return [sys.executable, "-m", f"stages.{name}"]


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment for stage subprocesses: this venv first on PATH, quiet, no analytics."""
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    # One torch/OpenMP thread per stage process: `make test` runs a test file on every core at once, and
    # a stage that also took every core would oversubscribe them; these models are tiny, so a second
    # thread mostly waits for a descheduled one (measured: the docs guides' test 200 -> 164 s beside
    # another file). Params that set threads (train.threads, eval.threads) still decide.
    env.setdefault("OMP_NUM_THREADS", "1")
    env.update({"CI": "true", "DVC_NO_ANALYTICS": "1", "PYTHONHASHSEED": "0",
                "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
                "GIT_COMMITTER_EMAIL": "t@t"})
    env.pop("DVCLIVE_TEST", None)
    env.update(extra)
    return env


def unboxed(stderr: str) -> str:
    """A Typer usage error as one line of words: out of the box it is drawn in, unwrapped."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", stderr).split())


def run(cmd: list[str], cwd: Path, check: bool = True, **env: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, cwd=cwd, env=subprocess_env(**env), capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}\n--- stdout\n{proc.stdout}"
                             f"\n--- stderr\n{proc.stderr}")
    return proc


@pytest.fixture(scope="session")
def stdlib_sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of ~40 real standard-library modules (about 1 MB of code)."""
    import sysconfig

    src = Path(sysconfig.get_paths()["stdlib"])
    dst = tmp_path_factory.mktemp("stdlib_sample")
    for rel in SAMPLE_MODULES:
        target = dst / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / rel, target)
    return dst


@pytest.fixture
def one_thread() -> Iterator[None]:
    """torch on one thread for the test, restored after. The test models are tiny: with two threads on
    a machine shared with other work, every small op waits at a barrier for a descheduled thread."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def pretrained_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """data/prepared of the fine-tuning tests: real stdlib code (tests/pretrainedkit.py)."""
    from tests.pretrainedkit import write_corpus

    return write_corpus(tmp_path_factory.mktemp("corpus") / "prepared")


@pytest.fixture(scope="module")
def pretrained_bases(pretrained_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A toy pretrained model folder of each family, with its own tokenizer (tests/pretrainedkit.py)."""
    from tests.pretrainedkit import FAMILIES, make_pretrained, train_texts

    root = tmp_path_factory.mktemp("bases")
    return {f: make_pretrained(f, train_texts(pretrained_corpus), root / f) for f in FAMILIES}


def merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def compose(tmp_path: Path, overrides: list[str], name: str = "composed.yaml") -> Path:
    """conf/ composed exactly as `dvc exp run -S ...` does it (DVC's own function), into tmp_path/name."""
    from dvc.utils.hydra import compose_and_dump

    out = tmp_path / name
    compose_and_dump(out, str(ROOT / "conf"), None, "config", str(ROOT), overrides)
    return out


def new_repo(root: Path, params: dict | None = None, name: str = "repo", hydra: bool = False) -> Path:
    """A fresh git+DVC repository `root/name` holding this project's pipeline (dvc.yaml, stages/,
    codex_ml/) with params.yaml = the project's params.yaml updated by `params` (nested dicts merge).
    hydra=True also copies conf/ and enables DVC's Hydra composition, as in the project."""
    repo = root / name
    repo.mkdir()
    for item in ("dvc.yaml", "stages", "codex_ml", "base-models", *(("conf",) if hydra else ())):
        src = ROOT / item
        if src.is_dir():
            shutil.copytree(src, repo / item, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copyfile(src, repo / item)
    shutil.copyfile(ROOT / ".gitignore", repo / ".gitignore")
    base = yaml.safe_load((ROOT / "params.yaml").read_text())
    (repo / "params.yaml").write_text(yaml.safe_dump(merge(base, params or {}), sort_keys=False))
    run(["git", "init", "-q", "-b", "main"], repo)
    run(["dvc", "init", "-q"], repo)
    run(["dvc", "config", "core.analytics", "false"], repo)
    if hydra:
        for key, value in (("enabled", "true"), ("config_dir", "conf"), ("config_name", "config")):
            run(["dvc", "config", f"hydra.{key}", value], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "init"], repo)
    return repo


@pytest.fixture
def make_repo(tmp_path: Path) -> Callable[..., Path]:
    """new_repo() under this test's tmp_path."""

    def make(params: dict | None = None, name: str = "repo", hydra: bool = False) -> Path:
        return new_repo(tmp_path, params, name, hydra)

    return make


# The longest test files, started first: `make test` runs the suite on every core (pytest-xdist, one
# file per worker at a time, in this order; Makefile), so the longest files start at once, not last.
LONGEST_FIRST = ("tests/test_docs.py", "tests/test_docs_guides.py", "tests/test_docs_readme_own.py",
                 "tests/test_pipeline_run.py", "tests/test_pretrained_dvc.py", "tests/test_pretrained.py",
                 "tests/test_compare.py",
                 "tests/train/test_train_process.py",
                 # past one machine: each starts its service once and runs two pipelines or trainings
                 "tests/test_ray.py", "tests/test_slurm.py", "tests/train/test_fsdp.py",
                 "tests/train/test_two_nodes.py", "tests/test_s3_remote.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        path = item.nodeid.split("::", 1)[0]
        return LONGEST_FIRST.index(path) if path in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: the rest keep their order


# Real services past one machine (tests/clusters.py), each started once per test session, on loopback.
@pytest.fixture(scope="session")
def ray_address() -> Iterator[str]:
    from tests.clusters import ray_cluster

    with ray_cluster() as address:
        yield address


@pytest.fixture(scope="session")
def slurm_env() -> Iterator[dict[str, str]]:
    from tests.clusters import slurm_cluster

    with slurm_cluster() as env:
        yield env


@pytest.fixture(scope="session")
def s3_env() -> Iterator[dict[str, str]]:
    from tests.clusters import moto_s3

    with moto_s3() as env:
        yield env
