"""Checkpoints: verify, choose which to resume, retain the best few.

A checkpoint is one folder `checkpoint-<step>/` under models/checkpoints/ holding what transformers'
Trainer saves (model.safetensors, optimizer.pt, scheduler.pt, rng_state*.pth, trainer_state.json)
plus two files of ours:

- codex.json: the step, the val loss at that step, the sampler position and the *fingerprint*
  (sha256 of the model and train params, the token data, the training code and library versions,
  and the number of processes) with the inputs it was computed from.
- manifest.json: the sha256 of every other file, written last. A folder without a manifest that
  verifies is incomplete (killed while saving) or damaged, and is never resumed.

Weights are safetensors; Trainer reads optimizer.pt, scheduler.pt and rng_state*.pth with
`torch.load(weights_only=True)` (tensors and plain containers only: nothing is unpickled), and the
one pickle it writes, training_args.bin, is deleted unread.

On start the newest verifying checkpoint with this run's fingerprint is resumed. One with another
fingerprint was made by other params or data; resuming it would silently mix two configurations, so
it is never resumed (`dvc exp run -S train.lr=...` starts fresh and says which params differ).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codex_ml.io import sha256_file, write_json

log = logging.getLogger("codex_ml.train")

MANIFEST = "manifest.json"
META = "codex.json"
FORMAT = 1
_NAME = re.compile(r"^checkpoint-(\d+)$")


def fingerprint_of(inputs: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode("utf-8")).hexdigest()


def code_fingerprint(packages: list[Path]) -> str:
    """sha256 over the .py files of `packages`: changed training code never resumes old state."""
    h = hashlib.sha256()
    for pkg in packages:
        for f in sorted(pkg.rglob("*.py")):
            h.update(f.relative_to(pkg.parent).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


def write_manifest(ckpt: Path) -> None:
    """Hash every file of a finished checkpoint folder; the manifest is the last file written."""
    files = {f.relative_to(ckpt).as_posix(): sha256_file(f)
             for f in sorted(ckpt.rglob("*")) if f.is_file() and f.name != MANIFEST}
    write_json(ckpt / MANIFEST, {"format": FORMAT, "files": files})


def verify(ckpt: Path) -> str | None:
    """None if the manifest verifies, else what is wrong (for the warning)."""
    try:
        manifest = json.loads((ckpt / MANIFEST).read_text(encoding="utf-8"))
        files = manifest["files"]
    except FileNotFoundError:
        return "no manifest (incomplete: killed while saving?)"
    except (ValueError, KeyError, TypeError):
        return "unreadable manifest"
    if META not in files:
        return f"manifest does not list {META}"
    for name, digest in sorted(files.items()):
        path = ckpt / name
        if not path.is_file():
            return f"{name} missing"
        if sha256_file(path) != digest:
            return f"{name}: sha256 mismatch"
    return None


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    step: int
    meta: dict[str, Any]

    @property
    def val_loss(self) -> float | None:
        return self.meta.get("val_loss")

    @property
    def fingerprint(self) -> str:
        return str(self.meta.get("fingerprint"))


def checkpoint_dirs(root: Path) -> list[tuple[int, Path]]:
    """(step, folder) of every checkpoint-<step> folder, newest first."""
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := _NAME.match(p.name))]
    return sorted(found, reverse=True)


def read_checkpoint(path: Path) -> Checkpoint:
    meta = json.loads((path / META).read_text(encoding="utf-8"))
    return Checkpoint(path=path, step=int(meta["step"]), meta=meta)


@dataclass
class ResumeChoice:
    resume: Checkpoint | None  # the checkpoint to continue from, or None: start fresh
    corrupt: list[tuple[Path, str]]  # failed verification: (folder, why)
    foreign: list[Checkpoint]  # verified, but made by other params, data or code


def choose_resume(root: Path, fingerprint: str) -> ResumeChoice:
    """Verify every checkpoint under `root` and pick the newest one of this fingerprint. Reads only."""
    choice = ResumeChoice(resume=None, corrupt=[], foreign=[])
    for step, path in checkpoint_dirs(root):
        problem = verify(path)
        if problem is None:
            ckpt = read_checkpoint(path)
            if ckpt.step != step:
                problem = f"{META} says step {ckpt.step}"
        if problem is not None:
            choice.corrupt.append((path, problem))
        elif ckpt.fingerprint != fingerprint:
            choice.foreign.append(ckpt)
        elif choice.resume is None:
            choice.resume = ckpt
    return choice


def describe_difference(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """The keys whose values differ between two fingerprint inputs, e.g. ['train.lr: 0.002 -> 0.001']."""
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        name = f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            out += describe_difference(a, b, f"{name}.")
        elif a != b:
            out.append(f"{name}: {_short(a)} -> {_short(b)}")
    return out


def _short(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 24 else text[:12] + "…"


def report_and_clean(choice: ResumeChoice, inputs: dict[str, Any]) -> None:
    """Say what will happen, and delete the checkpoints that can never be resumed by this run: a
    damaged one, or one of another configuration (models/checkpoints holds this run's checkpoints;
    earlier runs' are in the DVC cache). Call on one process only."""
    for path, why in choice.corrupt:
        log.warning("checkpoint %s is corrupt (%s): skipped and removed", path, why)
        shutil.rmtree(path)
    for ckpt in choice.foreign:
        diff = describe_difference(ckpt.meta.get("fingerprint_inputs", {}), inputs)
        log.warning("checkpoint %s was made with other params, data or code (%s): not resumed; removed",
                    ckpt.path, "; ".join(diff) or "fingerprint differs")
        shutil.rmtree(ckpt.path)
    if choice.resume is None:
        log.info("no checkpoint of these params to resume: starting fresh")
    else:
        log.info("resuming from %s (step %d)", choice.resume.path, choice.resume.step)


def retain(root: Path, keep_best: int) -> list[Path]:
    """Delete all but the newest checkpoint and the `keep_best` with the lowest val loss."""
    ckpts = [read_checkpoint(p) for _, p in checkpoint_dirs(root) if (p / MANIFEST).is_file()]
    if not ckpts:
        return []
    keep = {max(ckpts, key=lambda c: c.step).path}
    scored = sorted((c for c in ckpts if c.val_loss is not None), key=lambda c: (c.val_loss, -c.step))
    keep |= {c.path for c in scored[:keep_best]}
    removed = [c.path for c in ckpts if c.path not in keep]
    for path in removed:
        shutil.rmtree(path)
    return removed
