"""Sources at real size: Hugging Face datasets (shard folders, save_to_disk, hub ids from the local cache),
compressed JSONL, and the partition of every source into contiguous parts. Every corpus is built here,
small and real, with pyarrow and datasets; the hub cache is laid out as huggingface_hub lays it out."""

from __future__ import annotations

import gzip
import itertools
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from hypothesis import given
from hypothesis import strategies as st

from codex_ml.data import hf_source
from codex_ml.data.documents import part_bounds
from codex_ml.data.sources import open_source
from codex_ml.data.stage import prepare
from codex_ml.params import DataParams
from codex_ml.runtime import StageError

COMMIT = "a" * 40
COMMIT_V1 = "b" * 40


def code(i: int) -> str:
    return f"def f{i}(x):\n    return x * {i}\n"


Doc = tuple[str, bytes | None, str | None]  # a RawDocument as a plain tuple: path, data, rejected


def docs(params: DataParams, rank: int = 0, world_size: int = 1) -> list[Doc]:
    return [(d.path, d.data, d.rejected) for d in open_source(params).documents(rank, world_size)]


def write_parquet_shards(folder: Path) -> Path:
    """Two shards, written out of order: a `path` column, a null text and one text over 100 bytes."""
    folder.mkdir(parents=True)
    pq.write_table(pa.table({"text": [code(3), None, "y" * 200], "path": ["c.py", "d.py", "big.py"],
                             "stars": [1, 2, 3]}), folder / "part-1.parquet")
    pq.write_table(pa.table({"text": [code(1), code(2)], "path": ["a.py", "b.py"], "stars": [4, 5]}),
                   folder / "part-0.parquet")
    (folder / "README.md").write_text("# a dataset card: not a shard\n")
    return folder


def write_json_shards(folder: Path) -> Path:
    """json.gz shards without path or id: text in `content`, identity from the row's place."""
    folder.mkdir(parents=True)
    for shard, rows in enumerate([[code(10), code(11)], [code(12), 7, code(13)]]):
        with gzip.open(folder / f"shard-{shard}.jsonl.gz", "wt") as f:
            for i, text in enumerate(rows):
                f.write(json.dumps({"content": text, "repo": f"r{shard}/{i}"}) + "\n")
    return folder


def write_arrow_shards(folder: Path) -> Path:
    """Arrow IPC stream shards, as datasets writes them."""
    folder.mkdir(parents=True)
    for shard in range(3):
        table = pa.table({"text": [code(20 + 2 * shard), code(21 + 2 * shard)],
                          "id": [f"doc-{2 * shard}", f"doc-{2 * shard + 1}"]})
        with pa.ipc.new_stream(folder / f"data-{shard:05d}.arrow", table.schema) as writer:
            writer.write_table(table)
    return folder


def write_saved(folder: Path) -> Path:
    """A save_to_disk DatasetDict of two splits."""
    train = datasets.Dataset.from_dict({"text": [code(30 + i) for i in range(7)] + [None]})
    test = datasets.Dataset.from_dict({"text": [code(40), code(41)]})
    datasets.DatasetDict({"train": train, "test": test}).save_to_disk(str(folder))
    return folder


def jsonl_lines() -> list[str]:
    return ([json.dumps({"path": f"m{i}.py", "text": code(50 + i)}) for i in range(4)]
            + ["{not json", json.dumps({"text": code(60)})])


def write_jsonl(path: Path) -> Path:
    data = ("\n".join(jsonl_lines()) + "\n").encode()
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(data))
    elif path.name.endswith(".zst"):  # two frames, as pzstd and `zstd -T` write them
        half = len(data) // 2
        zc = zstandard.ZstdCompressor()
        path.write_bytes(zc.compress(data[:half]) + zc.compress(data[half:]))
    else:
        path.write_bytes(data)
    return path


def write_hub_cache(cache: Path) -> Path:
    """`owner/name` as huggingface_hub caches a dataset: blobs, refs/main and refs/v1, and two snapshots
    whose files link to the blobs, in the Hub's layout (data/{split}-00000-of-00001.parquet)."""
    repo = cache / "datasets--owner--name"
    splits = {COMMIT: {"train": [code(70), code(71)], "test": [code(72)]}, COMMIT_V1: {"train": [code(80)]}}
    for commit, ref in ((COMMIT, "main"), (COMMIT_V1, "v1")):
        (repo / "refs").mkdir(parents=True, exist_ok=True)
        (repo / "refs" / ref).write_text(commit)
        data = repo / "snapshots" / commit / "data"
        data.mkdir(parents=True)
        for split, texts in splits[commit].items():
            blob = repo / "blobs" / f"{commit[:8]}-{split}"
            blob.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(pa.table({"text": texts}), blob)
            os.symlink(os.path.relpath(blob, data), data / f"{split}-00000-of-00001.parquet")
        (repo / "snapshots" / commit / "README.md").write_text("---\nlicense: mit\n---\n")
    return cache


@pytest.fixture
def hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = write_hub_cache(tmp_path / "hub")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    return cache


def test_parquet_shards_are_read_in_file_order_with_rejections(tmp_path: Path) -> None:
    params = DataParams(source="hf", path=str(write_parquet_shards(tmp_path / "pq")), max_file_bytes=100)
    assert docs(params) == [("a.py", code(1).encode(), None), ("b.py", code(2).encode(), None),
                            ("c.py", code(3).encode(), None), ("d.py", None, "malformed_row"),
                            ("big.py", None, "too_large")]
    source = open_source(params).describe()
    assert source["kind"] == "hf" and source["format"] == "parquet" and source["split"] == "train"
    assert source["files"] == ["part-0.parquet", "part-1.parquet"] and source["shards"] == 2
    assert source["revision"] is None and source["commit"] is None
    assert len(source["shards_sha256"]) == 64


def test_json_gz_shards_name_rows_by_their_place(tmp_path: Path) -> None:
    folder = write_json_shards(tmp_path / "js")
    params = DataParams(source="hf", path=str(folder), text_field="content")  # data.include: not applied
    assert docs(params) == [("shard-0.jsonl.gz:0", code(10).encode(), None),
                            ("shard-0.jsonl.gz:1", code(11).encode(), None),
                            ("shard-1.jsonl.gz:0", code(12).encode(), None),
                            ("shard-1.jsonl.gz:1", None, "malformed_row"),  # 7 is not a string
                            ("shard-1.jsonl.gz:2", code(13).encode(), None)]
    by_repo = DataParams(source="hf", path=str(folder), text_field="content", id_field="repo")
    assert [d[0] for d in docs(by_repo)] == ["r0/0", "r0/1", "r1/0", "r1/1", "r1/2"]


def test_arrow_shards_take_the_id_column(tmp_path: Path) -> None:
    params = DataParams(source="hf", path=str(write_arrow_shards(tmp_path / "arrow")))
    assert [(d[0], d[1]) for d in docs(params)] == [(f"doc-{i}", code(20 + i).encode()) for i in range(6)]
    assert open_source(params).describe()["format"] == "arrow"


def test_save_to_disk_reads_the_split_by_row(tmp_path: Path) -> None:
    folder = write_saved(tmp_path / "saved")
    train = docs(DataParams(source="hf", path=str(folder)))
    assert train == [(f"train:{i}", code(30 + i).encode(), None) for i in range(7)] + [
        ("train:7", None, "malformed_row")]
    test = DataParams(source="hf", path=str(folder), split="test")
    assert docs(test) == [("test:0", code(40).encode(), None), ("test:1", code(41).encode(), None)]
    source = open_source(test).describe()
    assert source["format"] == "save_to_disk" and source["rows"] == 2
    assert source["files"] == ["test/data-00000-of-00001.arrow"]
    with pytest.raises(StageError, match=r"data.split: 'validation' is not a split of .* \(its splits: "
                                         r"train, test\)"):
        open_source(DataParams(source="hf", path=str(folder), split="validation"))


@pytest.mark.parametrize("name", ["corpus.jsonl", "corpus.jsonl.gz", "corpus.jsonl.zst"])
def test_compressed_jsonl_reads_as_the_plain_file(tmp_path: Path, name: str) -> None:
    path = write_jsonl(tmp_path / name)
    got = docs(DataParams(source="jsonl", path=str(path)))
    assert [d[0] for d in got] == ["m0.py", "m1.py", "m2.py", "m3.py", f"{name}:5", f"{name}:6"]
    assert [d[2] for d in got] == [None] * 4 + ["malformed_jsonl", None]
    assert got[0][1] == code(50).encode()


def test_corrupt_compressed_jsonl_is_one_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(gzip.compress(("\n".join(jsonl_lines()) + "\n").encode())[:-12])
    with pytest.raises(StageError, match=r"data.path: cannot read .*cut.jsonl.gz"):
        docs(DataParams(source="jsonl", path=str(path)))


def test_hub_id_is_read_from_the_local_cache_at_its_revision(hub_cache: Path) -> None:
    main = DataParams(source="hf", path="owner/name")
    assert docs(main) == [("data/train-00000-of-00001.parquet:0", code(70).encode(), None),
                          ("data/train-00000-of-00001.parquet:1", code(71).encode(), None)]
    source = open_source(main).describe()
    assert (source["path"], source["revision"], source["commit"]) == ("owner/name", "main", COMMIT)
    assert source["files"] == ["data/train-00000-of-00001.parquet"]
    for revision in ("v1", COMMIT_V1):
        v1 = DataParams(source="hf", path="owner/name", revision=revision)
        assert [d[1] for d in docs(v1)] == [code(80).encode()]
        assert open_source(v1).describe()["commit"] == COMMIT_V1
    test = DataParams(source="hf", path="owner/name", split="test")
    assert docs(test) == [("data/test-00000-of-00001.parquet:0", code(72).encode(), None)]
    sub = DataParams(source="hf", path="owner/name/data")  # a folder inside the repository
    assert [d[0] for d in docs(sub)] == ["train-00000-of-00001.parquet:0", "train-00000-of-00001.parquet:1"]


def test_an_uncached_hub_id_is_one_error_naming_data_path(hub_cache: Path) -> None:
    for path, revision in (("owner/other", None), ("owner/name", "v2")):
        with pytest.raises(StageError) as err:
            open_source(DataParams(source="hf", path=path, revision=revision))
        message = str(err.value)
        assert message.startswith(f"data.path: {path}") and "not" in message
        assert "local Hugging Face cache" in message and str(hub_cache) in message
        assert "hf download" in message and "--repo-type dataset" in message
    with pytest.raises(StageError, match="has no folder nowhere"):
        open_source(DataParams(source="hf", path="owner/name/nowhere"))


@pytest.mark.parametrize(
    ("make", "params", "message"),
    [
        (write_parquet_shards, {"text_field": "body"},
         r"data.text_field: no column 'body' in .*part-0.parquet; its columns: text, path, stars"),
        (write_parquet_shards, {"text_field": "stars"},
         r"data.text_field: column 'stars' .* holds int64, not text"),
        (write_parquet_shards, {"id_field": "sha"},
         r"data.id_field: no column 'sha' in .*; its columns: text, "),
        (write_saved, {"text_field": "body"},
         r"data.text_field: no column 'body' in .*corpus; its columns: text"),
        (write_json_shards, {}, r"data.text_field: no column 'text' in .*; its columns: content, repo"),
        (write_parquet_shards, {"split": "test"}, r"data.split: 'test' is not a split of .* \(its splits, by "
                                                  r"the file names: train\)"),
        (write_parquet_shards, {"revision": "main"}, r"data.revision: applies to a hub dataset id only"),
    ],
)
def test_bad_columns_and_keys_are_one_error_naming_them(tmp_path: Path, make: Callable[[Path], Path],
                                                        params: dict[str, Any], message: str) -> None:
    folder = make(tmp_path / "corpus")
    with pytest.raises(StageError, match=message):
        open_source(DataParams(source="hf", path=str(folder), **params))
        docs(DataParams(source="hf", path=str(folder), **params))


def test_folders_that_are_not_one_dataset_are_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(StageError, match=r"data.path: .*empty has no files"):
        open_source(DataParams(source="hf", path=str(empty)))
    csv = tmp_path / "csv"
    csv.mkdir()
    (csv / "train.csv").write_text("text\nx\n")
    with pytest.raises(StageError, match=r"has no parquet, json\(l\)\(.gz/.zst\) or arrow shards for split "
                                         r"'train': only 1 other files \(train.csv\)"):
        open_source(DataParams(source="hf", path=str(csv)))
    mixed = write_parquet_shards(tmp_path / "mixed")
    (mixed / "extra.jsonl").write_text(json.dumps({"text": "x"}) + "\n")
    with pytest.raises(StageError, match=r"mixes shard formats in split 'train' \(1 json, 2 parquet\)"):
        open_source(DataParams(source="hf", path=str(mixed)))
    with pytest.raises(StageError, match=r"data.path: .*README.md is a file; data.source 'hf' reads"):
        open_source(DataParams(source="hf", path=str(mixed / "README.md")))
    with pytest.raises(StageError, match=r"data.path: nowhere is neither a folder nor a hub dataset id"):
        open_source(DataParams(source="hf", path="nowhere"))


def write_dir_corpus(root: Path) -> Path:
    """Files of very different sizes, a .gitignore with an ignored folder and file, one file too large."""
    for i in range(9):
        (root / f"pkg{i % 3}").mkdir(parents=True, exist_ok=True)
        (root / f"pkg{i % 3}" / f"m{i}.py").write_text(code(i) * (1 + 40 * (i % 4)))
    (root / "build").mkdir()
    (root / "build" / "gen.py").write_text("x = 1\n")
    (root / "pkg1" / "scratch.py").write_text("y = 2\n")
    (root / ".gitignore").write_text("build/\nscratch.py\n")
    (root / "huge.py").write_text("z = 3\n" * 2000)
    return root


SOURCES = {
    "dir": lambda p: DataParams(source="dir", path=str(write_dir_corpus(p / "dir")), max_file_bytes=8000),
    "stdlib": lambda p: DataParams(include=["json/*.py", "email/*.py"]),
    "parquet": lambda p: DataParams(source="hf", path=str(write_parquet_shards(p / "pq")),
                                    max_file_bytes=100),
    "json.gz": lambda p: DataParams(source="hf", path=str(write_json_shards(p / "js")), text_field="content"),
    "arrow": lambda p: DataParams(source="hf", path=str(write_arrow_shards(p / "arrow"))),
    "save_to_disk": lambda p: DataParams(source="hf", path=str(write_saved(p / "saved"))),
    "jsonl.zst": lambda p: DataParams(source="jsonl", path=str(write_jsonl(p / "c.jsonl.zst"))),
}


@pytest.mark.parametrize("kind", sorted(SOURCES))
def test_parts_concatenate_to_the_whole_sequence(tmp_path: Path, kind: str) -> None:
    params = SOURCES[kind](tmp_path)
    whole = docs(params)
    assert len(whole) >= 5
    for world_size in (1, 2, 3, 4):
        parts = [docs(params, rank, world_size) for rank in range(world_size)]
        assert [d for part in parts for d in part] == whole, f"world_size {world_size}"
    if kind == "dir":
        assert ("build/gen.py", None, "gitignored") in whole and ("huge.py", None, "too_large") in whole
        two = [sum(len(d[1] or b"") for d in docs(params, rank, 2)) for rank in (0, 1)]
        assert min(two) > 0.25 * sum(two)  # cut by bytes, not by count
    with pytest.raises(ValueError, match="rank 2 of 2"):
        docs(params, 2, 2)


@given(st.lists(st.integers(0, 1000), max_size=40), st.integers(1, 9))
def test_part_bounds_cut_every_item_once_in_order(weights: list[int], world_size: int) -> None:
    bounds = [part_bounds(weights, rank, world_size) for rank in range(world_size)]
    assert bounds[0][0] == 0 and bounds[-1][1] == len(weights)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(bounds))
    assert all(start <= stop for start, stop in bounds)


def test_prepare_runs_on_a_parquet_folder_and_a_jsonl_gz(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    folder = write_parquet_shards(tmp_path / "pq")
    params = DataParams(source="hf", path=str(folder), max_file_bytes=100, val_fraction=0.0,
                        test_fraction=0.0)
    real, resolved = hf_source.resolve_hf, []

    def counted(p: DataParams) -> hf_source.HfDataset:  # the real resolver, its calls counted
        resolved.append(p)
        return real(p)

    monkeypatch.setattr(hf_source, "resolve_hf", counted)
    with caplog.at_level(logging.WARNING):
        m = prepare(params, tmp_path / "out-pq", tmp_path / "pq.json")
    assert resolved == [params]  # once for the run: checked, described and read from one resolution
    assert m["documents"] == {"train": 3, "val": 0, "test": 0}
    assert m["rejected"]["malformed_row"] == 1 and m["rejected"]["too_large"] == 1
    assert m["files_seen"] == 5 and m["source"]["files"] == ["part-0.parquet", "part-1.parquet"]
    assert "1 rows without a string text" in caplog.text and "part-1.parquet" in caplog.text
    assert json.loads((tmp_path / "pq.json").read_text()) == m
    assert any((tmp_path / "out-pq").iterdir())

    gz = write_jsonl(tmp_path / "corpus.jsonl.gz")
    m = prepare(DataParams(source="jsonl", path=str(gz), val_fraction=0.0, test_fraction=0.0),
                tmp_path / "out-gz", tmp_path / "gz.json")
    assert m["documents"] == {"train": 5, "val": 0, "test": 0} and m["rejected"]["malformed_jsonl"] == 1
    assert m["source"] == {"kind": "jsonl", "path": str(gz)}


def test_reading_never_touches_the_network(tmp_path: Path, hub_cache: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """datasets pings the Hub on every load_dataset (a download counter) unless it is offline: the
    source keeps it offline, so reading opens no socket and resolves no host name."""
    import socket

    attempts: list[object] = []

    def refuse(*args: object, **kwargs: object) -> None:
        attempts.append(args)
        raise OSError("network access in a test")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    for path in (str(write_parquet_shards(tmp_path / "pq")), "owner/name"):
        params = DataParams(source="hf", path=path)
        open_source(params)
        assert docs(params) and open_source(params).describe()
    assert attempts == []
