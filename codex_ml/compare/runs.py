"""The runs `codex compare` reads: a git revision, a `dvc exp` name, `workspace`, or a folder holding
`metrics/`; several of them joined by commas are one side's pooled runs (seeds of one config).

Revisions and experiment names resolve through DVC's own resolver (`dvc.scm.resolve_rev`, which looks
up experiment refs when git does not know the name, as `dvc exp show` does), and files are read at that
revision through DVC's file system (`Repo.switch` + `repo.dvcfs`): eval's rows are in git (`cache:
false`), and an output in DVC's cache reads the same way. A folder that exists and holds `metrics/`
is read from disk; any other name is a revision. Each run also brings the hash of `data/prepared` its
eval stage recorded in `dvc.lock`, where there is one, to say why two runs' documents differ.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from codex_ml import paths
from codex_ml.compare.metrics import Row
from codex_ml.runtime import StageError

EVAL_DIR = paths.EVAL_ROWS.as_posix()


@dataclass
class Run:
    name: str  # as given
    source: str  # what it resolved to, in words
    rows: dict[str, list[Row] | None] = field(default_factory=dict)  # file name under metrics/eval/
    prepared: str | None = None  # md5 of data/prepared in dvc.lock's eval deps


def split_side(spec: str) -> list[str]:
    """"A1,A2,A3" -> the pooled runs of one side."""
    names = [s.strip() for s in spec.split(",")]
    if not spec.strip() or any(not n for n in names):
        raise StageError(f"run {spec!r}: expected a revision, experiment or folder, or several joined "
                         "by commas (A1,A2,A3)")
    return names


def parse_rows(text: str, where: str) -> list[Row]:
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise StageError(f"{where}: line {n}: not JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise StageError(f"{where}: line {n}: expected a JSON object, got {type(row).__name__}")
        rows.append(row)
    return rows


def prepared_hash(lock_text: str | None) -> str | None:
    """md5 of data/prepared as the eval stage's deps in dvc.lock record it; None where there is none."""
    if lock_text is None:
        return None
    try:
        lock = yaml.safe_load(lock_text) or {}
        deps = lock["stages"]["eval"]["deps"]
    except (yaml.YAMLError, KeyError, TypeError):
        return None
    prepared = paths.PREPARED.as_posix()
    return next((str(d.get("md5")) for d in deps if isinstance(d, dict) and d.get("path") == prepared), None)


def is_folder(name: str) -> bool:
    return (Path(name) / "metrics").is_dir()


def load_runs(names: Iterable[str], files: list[str]) -> dict[str, Run]:
    """Each named run with the rows of `files` (None where a run has no such file), read once each."""
    runs: dict[str, Run] = {}
    with ExitStack() as stack:
        repo: Any = None
        for name in names:
            if name in runs:
                continue
            if is_folder(name):
                runs[name] = _from_folder(name, files)
                continue
            if repo is None:
                repo = stack.enter_context(_open_repo(name))
            runs[name] = _from_revision(repo, name, files)
    return runs


def _from_folder(name: str, files: list[str]) -> Run:
    root = Path(name)
    run = Run(name, f"folder {name}")
    for f in files:
        path = root / EVAL_DIR / f
        run.rows[f] = parse_rows(path.read_text(encoding="utf-8"), str(path)) if path.is_file() else None
    lock = root / paths.LOCK
    run.prepared = prepared_hash(lock.read_text(encoding="utf-8") if lock.is_file() else None)
    return run


def _open_repo(name: str) -> Any:
    from dvc.exceptions import NotDvcRepoError
    from dvc.repo import Repo

    try:
        return Repo()
    except NotDvcRepoError:
        raise StageError(f"run {name!r}: not a folder holding metrics/, and no DVC repository here to "
                         "resolve it as a revision or experiment") from None


def _from_revision(repo: Any, name: str, files: list[str]) -> Run:
    from dvc.scm import RevError, resolve_rev

    if name == "workspace":
        rev, source = "workspace", "the workspace"
    else:
        try:
            rev = resolve_rev(repo.scm, name)
        except RevError as exc:
            raise StageError(f"run {name!r}: unknown revision or experiment ({exc}); `dvc exp show` lists "
                             "experiments, `git log` revisions") from None
        source = f"{name} ({rev[:7]})" if not rev.startswith(name) else rev[:7]
    run = Run(name, source)
    with repo.switch(rev):
        fs = repo.dvcfs
        for f in files:
            path = f"{EVAL_DIR}/{f}"
            if fs.isfile(path):
                with fs.open(path, "r", encoding="utf-8") as fh:
                    run.rows[f] = parse_rows(fh.read(), f"{source}: {path}")
            else:
                run.rows[f] = None
        lock = None
        if fs.isfile(paths.LOCK.as_posix()):
            with fs.open(paths.LOCK.as_posix(), "r", encoding="utf-8") as fh:
                lock = fh.read()
        run.prepared = prepared_hash(lock)
    return run
