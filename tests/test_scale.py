"""prepare at scale on real code: the same bytes for any number of workers, bounded shards, and
near-duplicate removal counted in metrics (benchmarks/bench_scale.py measures speed and
memory)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from codex_ml.data.stage import prepare
from codex_ml.params import DataParams, NearDedupParams
from codex_ml.paths import SPLITS
from codex_ml.shards import iter_prepared


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_one_and_two_workers_write_the_same_shards_and_metrics(tmp_path: Path) -> None:
    """The whole stdlib (30 MB), redaction on, 8 MiB shards: 1 and 2 worker processes give the same
    files, byte for byte; every train shard but the last holds at least 8 MiB of text."""
    outs = {}
    for workers in (1, 2):
        params = DataParams(workers=workers, shard_mb=8)
        prepare(params, tmp_path / f"w{workers}" / "prepared", tmp_path / f"w{workers}" / "prepare.json")
        outs[workers] = folder_bytes(tmp_path / f"w{workers}")
    assert outs[1] == outs[2]
    m = json.loads(outs[1]["prepare.json"])
    assert m["shards"]["train"] >= 3 and m["shards"]["val"] == m["shards"]["test"] == 1
    train = sorted((tmp_path / "w1" / "prepared").glob("train-*.jsonl"))
    assert [p.name for p in train] == [f"train-{i:05d}.jsonl" for i in range(len(train))]
    for shard in train[:-1]:
        text = sum(json.loads(line)["bytes"] for line in shard.open(encoding="utf-8"))
        assert text >= 8 << 20
    assert sum(1 for s in SPLITS for _ in iter_prepared(tmp_path / "w1" / "prepared", s)) == \
        sum(m["documents"].values())


@pytest.fixture()
def corpus_with_near_copies(stdlib_sample: Path, tmp_path: Path) -> Path:
    """The stdlib sample plus, for three modules, a copy with a few lines edited."""
    corpus = tmp_path / "corpus"
    shutil.copytree(stdlib_sample, corpus)
    modules = sorted(p for p in corpus.rglob("*.py") if p.stat().st_size > 20_000)[:3]
    for path in modules:
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        lines[10:12] = ["# edited in this copy\n", "VALUE = 42\n"]
        (path.parent / f"zz_copy_of_{path.name}").write_text("".join(lines), encoding="utf-8")
    return corpus


def test_near_duplicates_are_dropped_counted_and_reported(corpus_with_near_copies: Path,
                                                          tmp_path: Path) -> None:
    """Each edited copy comes after its original in the sorted walk and is dropped; with near-dedup
    off both are kept. The count is in metrics/prepare.json, for any worker count."""
    base = DataParams(source="dir", path=str(corpus_with_near_copies), val_fraction=0.0, test_fraction=0.0)
    on = base.model_copy(update={"near_dedup": NearDedupParams(enabled=True)})
    m_off = prepare(base, tmp_path / "off", tmp_path / "off.json")
    m_on = [prepare(on.model_copy(update={"workers": w}), tmp_path / f"on{w}", tmp_path / f"on{w}.json")
            for w in (1, 2)]
    assert m_off["near_duplicates"] == 0 and m_off["near_dedup"] is False
    assert m_on[0] == m_on[1] and m_on[0]["near_duplicates"] == 3 and m_on[0]["near_dedup"] is True
    assert folder_bytes(tmp_path / "on1") == folder_bytes(tmp_path / "on2")
    kept = {r["path"] for _, r in iter_prepared(tmp_path / "on1", "train")}
    assert not [p for p in kept if "zz_copy_of_" in p]
    assert m_off["documents"]["train"] == m_on[0]["documents"]["train"] + 3
