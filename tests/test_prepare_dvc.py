"""prepare under real DVC, in a temporary git+DVC repository, on a folder with planted problems."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from codex_ml.data.filters import is_generated
from codex_ml.data.secrets import redact
from tests.conftest import run, stage_command
from tests.planted_secrets import PLANTED, PLANTED_SECRETS
from tests.preparekit import planted_corpus


def test_dvc_repro_prepare_counts_everything(tmp_path: Path, stdlib_sample: Path,
                                             make_repo: Callable[..., Path]) -> None:
    corpus = planted_corpus(tmp_path, stdlib_sample)
    repo = make_repo({"data": {"source": "dir", "path": str(corpus), "max_file_bytes": 100_000,
                               "val_fraction": 0.1, "test_fraction": 0.1}})
    run(["dvc", "repro", "prepare"], repo)

    m = json.loads((repo / "metrics" / "prepare.json").read_text())
    # The two planted generated files, and the sample's own (token.py, keyword.py, ... when sampled).
    generated = {p for p in stdlib_sample.rglob("*.py") if is_generated(p.read_text())}
    sample_generated = len(generated)
    assert m["rejected"] == {"binary": 2, "empty": 2, "generated": 2 + sample_generated, "gitignored": 0,
                             "invalid_utf8": 1,
                             "malformed_jsonl": 0, "malformed_row": 0,
                             "symlink_loop": 2, "symlink_outside_root": 1, "too_large": 1,
                             "unreadable": 0,
                             # data.quality is off in the default params this repository starts from
                             "alphanumeric_fraction": 0, "data_file": 0, "max_line_length": 0,
                             "mean_line_length": 0}
    assert m["duplicates"] == 1
    # Every planted secret once, plus the two planted addresses and the author addresses in the sample.
    expected = Counter({k: 1 for k in PLANTED})
    for p in stdlib_sample.rglob("*.py"):
        if p not in generated:
            expected.update(redact(p.read_text())[1])
    expected["email"] += 2
    assert m["redactions"] == dict(expected)
    n_docs = len(list(stdlib_sample.rglob("*.py"))) - sample_generated + len(PLANTED) + 1
    assert sum(m["documents"].values()) == n_docs
    assert all(m["documents"][s] > 0 for s in ("train", "val", "test"))

    texts = "".join(p.read_text() for p in sorted((repo / "data" / "prepared").glob("*.jsonl")))
    assert texts and sorted(p.name for p in (repo / "data" / "prepared").iterdir()) == \
        ["README.md", "decontaminated.ndjson", "test-00000.jsonl", "train-00000.jsonl", "val-00000.jsonl"]
    assert (repo / "data" / "prepared" / "decontaminated.ndjson").read_text() == ""  # nothing planted
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
    proc = run(stage_command("prepare"), repo, check=False)
    assert proc.returncode == 2
    assert f"data.path: {tmp_path / 'nope'} is not a folder" in proc.stderr
    assert not (repo / "data").exists()
