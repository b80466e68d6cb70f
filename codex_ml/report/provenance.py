"""Where the numbers came from: git commit and dirty state, each stage's dvc.lock entry, package
versions, hardware. Each function returns what it found, or a reason why it found nothing."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

PACKAGES = ("codex-ml", "torch", "transformers", "tokenizers", "sentencepiece", "peft", "safetensors",
            "numpy", "dvc", "dvclive")


@dataclass(frozen=True)
class GitState:
    commit: str | None
    dirty: list[str]  # `git status --porcelain` lines: changed and untracked paths
    problem: str | None = None  # why there is no commit (not a repository, no commits, no git)


@dataclass(frozen=True)
class LockedStage:
    name: str
    cmd: str
    digest: str  # sha256 of the stage's canonical dvc.lock entry: changes iff anything recorded changes
    outs: list[tuple[str, str]] = field(default_factory=list)  # (path, md5)
    deps: int = 0
    params: dict[str, Any] = field(default_factory=dict)


def _git(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)


def git_state(cwd: Path) -> GitState:
    try:
        head = _git(["rev-parse", "--verify", "--quiet", "HEAD"], cwd)
    except FileNotFoundError:
        return GitState(None, [], "git is not installed")
    if head.returncode != 0:
        inside = _git(["rev-parse", "--is-inside-work-tree"], cwd)
        return GitState(None, [], "not a git repository" if inside.returncode else "no commits yet")
    status = _git(["status", "--porcelain", "--untracked-files=all"], cwd)
    return GitState(head.stdout.strip(), [line for line in status.stdout.splitlines() if line.strip()])


def stage_digest(entry: Any) -> str:
    return hashlib.sha256(json.dumps(entry, sort_keys=True, default=str).encode("utf-8")).hexdigest()


def locked_stages(lock_path: Path) -> tuple[list[LockedStage], str | None]:
    """Stages recorded in dvc.lock, in file order; (stages, problem)."""
    if not lock_path.is_file():
        return [], f"{lock_path} not found: no stage has been run with dvc repro here"
    try:
        lock = yaml.safe_load(lock_path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        return [], f"{lock_path}: not valid YAML ({str(exc).splitlines()[0]})"
    stages = lock.get("stages") if isinstance(lock, dict) else None
    if not isinstance(stages, dict):
        return [], f"{lock_path}: no 'stages' mapping"
    out = []
    for name, entry in stages.items():
        entry = entry if isinstance(entry, dict) else {}
        outs = [(str(o.get("path")), str(o.get("md5") or o.get("hash") or "?"))
                for o in entry.get("outs", []) if isinstance(o, dict)]
        params: dict[str, Any] = {}
        for values in (entry.get("params") or {}).values():
            if isinstance(values, dict):
                params.update(values)
        cmd = entry.get("cmd", "")
        out.append(LockedStage(name=str(name), cmd=" && ".join(cmd) if isinstance(cmd, list) else str(cmd),
                               digest=stage_digest(entry), outs=outs, deps=len(entry.get("deps", [])),
                               params=params))
    return out, None


def package_versions() -> list[tuple[str, str]]:
    found = []
    for name in PACKAGES:
        try:
            found.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            found.append((name, "not installed"))
    return found


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware() -> dict[str, str]:
    import torch

    gpus = ([torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
            if torch.cuda.is_available() else [])
    return {
        "python": f"{platform.python_implementation()} {sys.version.split()[0]}",
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "logical cores": str(os.cpu_count()),
        "torch threads": str(torch.get_num_threads()),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "unset"),
        "GPU": ", ".join(gpus) if gpus else "none (torch sees no CUDA device)",
    }
