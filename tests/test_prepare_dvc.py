"""prepare under real DVC, in a temporary git+DVC repository, on a folder with planted problems."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from codex_ml.data.secrets import redact
from tests.conftest import run
from tests.test_prepare import PLANTED, PLANTED_SECRETS


def _planted_corpus(base: Path, stdlib_sample: Path) -> Path:
    corpus = base / "corpus"
    shutil.copytree(stdlib_sample, corpus)  # 40 real modules
    bad = corpus / "bad"
    bad.mkdir()
    (bad / "nul.py").write_bytes(b"x = 1\x00\x00\x00\n")  # binary: NUL bytes
    (bad / "ctrl.py").write_bytes(bytes(range(1, 9)) * 40)  # binary: control bytes
    (bad / "latin1.py").write_bytes("# caf\xe9\nx = 1\n".encode("latin-1"))  # invalid UTF-8
    (bad / "empty.py").write_bytes(b"")
    (bad / "blank.py").write_bytes(b"\n\n   \n")
    (bad / "huge.py").write_bytes(b"x = 1\n" * 20_000)  # 120 kB > max_file_bytes below
    (bad / "copy_of_heapq.py").write_bytes((stdlib_sample / "heapq.py").read_bytes())  # duplicate
    (bad / "notes.txt").write_text("not matched by include\n")
    outside = base / "outside.py"
    outside.write_text("leak = 1\n")
    os.symlink(outside, bad / "escape.py")
    os.symlink(bad / "loop_b.py", bad / "loop_a.py")
    os.symlink(bad / "loop_a.py", bad / "loop_b.py")
    secrets = corpus / "config"
    secrets.mkdir()
    for i, (kind, line) in enumerate(sorted(PLANTED.items())):
        (secrets / f"settings_{i}.py").write_text(f"# {kind}\n{line}VALUE_{i} = {i}\n")
    (secrets / "two_emails.py").write_text('AUTHORS = ["ann@example.org", "bob@example.org"]\n')
    return corpus


def test_dvc_repro_prepare_counts_everything(tmp_path: Path, stdlib_sample: Path,
                                             make_repo: Callable[..., Path]) -> None:
    corpus = _planted_corpus(tmp_path, stdlib_sample)
    repo = make_repo({"data": {"source": "dir", "path": str(corpus), "max_file_bytes": 100_000,
                               "val_fraction": 0.1, "test_fraction": 0.1}})
    run(["dvc", "repro", "prepare"], repo)

    m = json.loads((repo / "metrics" / "prepare.json").read_text())
    assert m["rejected"] == {"binary": 2, "empty": 2, "invalid_utf8": 1, "malformed_jsonl": 0,
                             "symlink_loop": 2, "symlink_outside_root": 1, "too_large": 1,
                             "unreadable": 0}
    assert m["duplicates"] == 1
    # Every planted secret once, plus the two planted addresses and the author addresses in the sample.
    sample_emails = sum(redact(p.read_text())[1]["email"] for p in stdlib_sample.rglob("*.py"))
    expected = {k: 1 for k in PLANTED}
    expected["email"] += 2 + sample_emails
    assert m["redactions"] == expected
    n_docs = len(list(stdlib_sample.rglob("*.py"))) + len(PLANTED) + 1
    assert sum(m["documents"].values()) == n_docs
    assert all(m["documents"][s] > 0 for s in ("train", "val", "test"))

    texts = "".join((repo / "data" / "prepared" / f"{s}.jsonl").read_text() for s in ("train", "val", "test"))
    for _, secret in PLANTED_SECRETS.values():
        assert secret not in texts
    assert "<SECRET:aws_key>" in texts and "VALUE_0 = 0" in texts
    assert "leak = 1" not in texts

    # DVC tracks the outputs and reads the metrics.
    shown = json.loads(run(["dvc", "metrics", "show", "--json"], repo).stdout)
    assert shown[""]["data"]["metrics/prepare.json"]["data"]["duplicates"] == 1
    status = run(["dvc", "status", "prepare"], repo).stdout
    assert "up to date" in status.lower() or status.strip() == ""
    # A second repro has nothing to do and changes nothing.
    before = (repo / "dvc.lock").read_text()
    again = run(["dvc", "repro", "prepare"], repo).stdout
    assert "didn't change" in again.lower() or "skipping" in again.lower()
    assert (repo / "dvc.lock").read_text() == before


def test_bad_params_stop_the_stage_before_any_work(make_repo: Callable[..., Path]) -> None:
    repo = make_repo({"data": {"val_fraction": 0.7, "test_fraction": 0.4}})
    proc = run(["dvc", "repro", "prepare"], repo, check=False)
    assert proc.returncode != 0
    assert "data.val_fraction + data.test_fraction: expected a sum < 1" in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert not (repo / "data").exists() and not (repo / "metrics").exists()


def test_missing_dir_is_one_clear_error(make_repo: Callable[..., Path], tmp_path: Path) -> None:
    repo = make_repo({"data": {"source": "dir", "path": str(tmp_path / "nope")}})
    proc = run(["python", "stages/prepare.py"], repo, check=False)
    assert proc.returncode == 2
    assert f"data.path: {tmp_path / 'nope'} is not a folder" in proc.stderr
    assert not (repo / "data").exists()
