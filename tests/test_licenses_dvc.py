"""Licenses through the prepare stage under real DVC, on the planted-license corpus (tests/licensekit.py):
each record carries the license that was planted and where it came from, metrics/prepare.json counts
documents and drops per license, `data.license_filter` keeps exactly what it names, a malformed filter
stops the stage before any work, and the dataset card is the same bytes on a rerun."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from huggingface_hub import DatasetCard

from codex_ml.data.licenses import DETECTOR, UNKNOWN
from codex_ml.paths import SPLITS
from codex_ml.shards import iter_prepared
from tests.conftest import run
from tests.licensekit import PLANTED, plant

INCLUDE = ["**/*.py", "**/*.c", "**/*.html"]
PERMISSIVE_DROPPED = {"GPL-3.0-only": 2, "GPL-2.0-or-later": 1, UNKNOWN: 2}


def planted_repo(tmp_path: Path, make_repo: Callable[..., Path], license_filter: object,
                 name: str = "repo") -> Path:
    corpus = plant(tmp_path / f"{name}-corpus")
    data = {"source": "dir", "path": str(corpus), "include": INCLUDE, "decontaminate": [],
            "val_fraction": 0.2, "test_fraction": 0.2, "license_filter": license_filter,
            "held_out": {"near_dup_threshold": None}}
    return make_repo(name=name, params={"data": data})


def records(repo: Path) -> dict[str, dict]:
    return {r["path"]: r for s in SPLITS for _, r in iter_prepared(repo / "data" / "prepared", s)}


def test_permissive_keeps_exactly_the_permissive_documents_with_counts(
        tmp_path: Path, make_repo: Callable[..., Path]) -> None:
    repo = planted_repo(tmp_path, make_repo, "permissive")
    run(["dvc", "repro", "prepare"], repo)
    m = json.loads((repo / "metrics" / "prepare.json").read_text())
    kept = {rel: (expr, source) for rel, (_, expr, source) in PLANTED.items()
            if expr not in PERMISSIVE_DROPPED}
    assert {p: (r["license"], r["license_source"]) for p, r in records(repo).items()} == kept
    assert m["licenses"] == dict(sorted(Counter(expr for expr, _ in kept.values()).items()))
    assert m["license_dropped"] == dict(sorted(PERMISSIVE_DROPPED.items()))
    assert m["license_filter"] == "permissive" and m["license_detector"] == DETECTOR

    card_path = repo / "data" / "prepared" / "README.md"
    card = DatasetCard.load(card_path)
    assert card.data.to_dict()["codex_ml"]["licenses"] == m["licenses"]
    assert "- dropped 2 documents under GPL-3.0-only (data.license_filter: permissive)" in card.text
    assert str(tmp_path) not in card.text  # no machine path to the corpus
    before = card_path.read_bytes()
    run(["dvc", "repro", "--force", "prepare"], repo)
    assert card_path.read_bytes() == before
    status = run(["dvc", "status", "prepare"], repo).stdout
    assert "up to date" in status.lower() or status.strip() == ""


def test_a_list_keeps_exactly_those_and_a_malformed_one_stops_before_any_work(
        tmp_path: Path, make_repo: Callable[..., Path]) -> None:
    repo = planted_repo(tmp_path, make_repo, ["MIT", "unknown"])
    run(["dvc", "repro", "prepare"], repo)
    kept = {rel for rel, (_, expr, _) in PLANTED.items() if expr in ("MIT", "Apache-2.0 OR MIT", UNKNOWN)}
    assert set(records(repo)) == kept

    bad = planted_repo(tmp_path, make_repo, ["MIT", "Foo-1.0"], name="bad")
    proc = run(["dvc", "repro", "prepare"], bad, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "Traceback" not in out
    assert "data.license_filter[1]: expected an SPDX license id, got 'Foo-1.0'" in out
    assert not (bad / "data").exists() and not (bad / "metrics").exists()
