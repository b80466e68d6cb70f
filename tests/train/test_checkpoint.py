"""Checkpoint manifests, the choice of what to resume, and retention."""

from __future__ import annotations

import json
from pathlib import Path

from codex_ml.training.checkpoint import (
    MANIFEST,
    META,
    choose_resume,
    describe_difference,
    retain,
    verify,
    write_manifest,
)


def make_checkpoint(root: Path, step: int, fingerprint: str = "fp", val_loss: float | None = 1.0) -> Path:
    path = root / f"checkpoint-{step}"
    (path / "sub").mkdir(parents=True)
    (path / "model.safetensors").write_bytes(bytes(range(256)) * (step + 1))
    (path / "sub" / "rng_state.pth").write_bytes(b"rng" * step)
    (path / META).write_text(json.dumps({"step": step, "fingerprint": fingerprint, "val_loss": val_loss,
                                         "fingerprint_inputs": {"train": {"lr": fingerprint}}}))
    write_manifest(path)
    return path


def test_manifest_lists_every_file_and_verifies(tmp_path: Path) -> None:
    path = make_checkpoint(tmp_path, 10)
    files = json.loads((path / MANIFEST).read_text())["files"]
    assert sorted(files) == [META, "model.safetensors", "sub/rng_state.pth"]
    assert verify(path) is None


def test_damage_is_detected(tmp_path: Path) -> None:
    path = make_checkpoint(tmp_path, 10)
    data = bytearray((path / "model.safetensors").read_bytes())
    data[100] ^= 1
    (path / "model.safetensors").write_bytes(bytes(data))
    assert verify(path) == "model.safetensors: sha256 mismatch"
    (path / "sub" / "rng_state.pth").unlink()
    assert verify(path) == "model.safetensors: sha256 mismatch"  # first problem in name order
    (path / "model.safetensors").unlink()
    assert verify(path) == "model.safetensors missing"
    (path / MANIFEST).unlink()
    assert verify(path) == "no manifest (incomplete: killed while saving?)"
    (path / MANIFEST).write_text("{not json")
    assert verify(path) == "unreadable manifest"


def test_resume_choice_is_the_newest_verifying_checkpoint_of_this_fingerprint(tmp_path: Path) -> None:
    make_checkpoint(tmp_path, 10)
    make_checkpoint(tmp_path, 20)
    make_checkpoint(tmp_path, 30)
    (tmp_path / "checkpoint-30" / "model.safetensors").write_bytes(b"torn write")
    make_checkpoint(tmp_path, 40, fingerprint="other")
    (tmp_path / "checkpoint-50").mkdir()  # killed before anything was written
    (tmp_path / "not-a-checkpoint").mkdir()
    choice = choose_resume(tmp_path, "fp")
    assert choice.resume is not None and choice.resume.step == 20
    assert [p.name for p, _ in choice.corrupt] == ["checkpoint-50", "checkpoint-30"]
    assert [c.step for c in choice.foreign] == [40]
    assert choose_resume(tmp_path, "nothing-matches").resume is None
    assert choose_resume(tmp_path / "missing", "fp").resume is None


def test_retain_keeps_the_best_by_val_loss_and_the_newest(tmp_path: Path) -> None:
    for step, loss in [(10, 3.0), (20, 2.0), (30, 2.5), (40, 1.5), (50, 1.9), (60, None)]:
        make_checkpoint(tmp_path, step, val_loss=loss)
    removed = retain(tmp_path, keep_best=2)
    assert sorted(p.name for p in removed) == ["checkpoint-10", "checkpoint-20", "checkpoint-30"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-40", "checkpoint-50", "checkpoint-60"]


def test_difference_names_the_changed_keys() -> None:
    old = {"train": {"lr": 0.002, "seed": 1}, "data": "abc"}
    new = {"train": {"lr": 0.001, "seed": 1}, "data": "abd"}
    assert describe_difference(old, new) == ['data: "abc" -> "abd"', "train.lr: 0.002 -> 0.001"]
