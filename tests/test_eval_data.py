"""`codex eval --data`: any corpus, prepared with the pipeline's own filters and redaction, scored by
any model folder in one command, with the same numbers as the pipeline's own path and data/ untouched."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from codex_ml.cli import app
from codex_ml.eval import baselines
from codex_ml.eval.stage import EvalInputs, run_eval
from codex_ml.params import EvalParams
from codex_ml.shards import iter_prepared
from tests.evalkit import NO_INFILL, shared_workspace
from tests.planted_secrets import CASES

pytestmark = pytest.mark.usefixtures("one_thread")

QUICK = ["--bootstrap", "50", "--completion-samples", "0", "--batch-size", "16", "--infill-lines", "0",
         "--infill-blocks", "0"]
SECRET = next(c for c in CASES if c.name == "github_classic_pat")


@pytest.fixture
def ws(tmp_path_factory: pytest.TempPathFactory, stdlib_sample: Path, tmp_path: Path,
       monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of a pipeline workspace (data/, models/), the command run from inside it."""
    ws = tmp_path / "ws"
    shutil.copytree(shared_workspace(tmp_path_factory, stdlib_sample), ws)
    monkeypatch.chdir(ws)
    return ws


def snapshot(folder: Path) -> dict[str, tuple[str, int]]:
    return {str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "",
                                         p.stat().st_mtime_ns) for p in sorted(folder.rglob("*"))}


def codex_eval(*args: str) -> tuple[str, dict]:
    out = Path("out.json").resolve()
    result = CliRunner().invoke(app, ["eval", "--model", "models/model", *QUICK, *args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    return result.stdout, json.loads(out.read_text())


def records(ws: Path) -> list[dict]:
    rows = (r for split in ("train", "val", "test") for _, r in iter_prepared(ws / "data/prepared", split))
    return sorted(rows, key=lambda r: r["path"])


def test_a_folder_scores_every_document_as_the_pipeline_would(ws: Path) -> None:
    before = snapshot(ws / "data")
    stdout, m = codex_eval("--data", str(ws / "corpus"))
    assert snapshot(ws / "data") == before  # the pipeline's data/ is not touched
    assert set(m) == {"data"}
    d = m["data"]
    assert "every document scored as one split, 'data'" in stdout
    assert "unigram n/a (no train split)" in stdout
    # The corpus is the one the real prepare stage split into data/prepared: all of it, in path order.
    docs = records(ws)
    assert d["documents"] == len(docs) and d["bytes"] == sum(r["bytes"] for r in docs)
    text = "".join(r["text"] for r in docs).encode()
    assert d["baselines"] == {"gzip_bpb": baselines.gzip_bpb(text), "xz_bpb": baselines.xz_bpb(text),
                              "unigram_bpb": None}
    assert d["leak"] is None  # no train split to leak from
    low, high = d["bits_per_byte_ci"]
    assert low <= d["bits_per_byte"] <= high
    # The same model on the same documents through the pipeline's token files: the same total bits.
    normal, _, _ = run_eval(EvalParams(bootstrap=0, completion_samples=0, batch_size=16, infill=NO_INFILL),
                            EvalInputs(model_dir=ws / "models/model"), splits=("train", "val", "test"))
    assert d["tokens"] == sum(s["tokens"] for s in normal.values())
    bits = sum(s["bits_per_byte"] * s["bytes"] for s in normal.values())
    assert d["bits_per_byte"] == pytest.approx(bits / d["bytes"], rel=1e-5)


def test_a_split_of_the_corpus_gives_the_pipelines_numbers_with_the_unigram(ws: Path) -> None:
    # data.* from params.yaml apply: the workspace was prepared with 10% val and 10% test.
    (ws / "params.yaml").write_text(yaml.safe_dump({"data": {"val_fraction": 0.1, "test_fraction": 0.1},
                                                    "train": {"seq_len": 64}}))
    before = snapshot(ws / "data")
    _, m = codex_eval("--data", str(ws / "corpus"), "--split", "val")
    assert snapshot(ws / "data") == before
    normal, _, _ = run_eval(EvalParams(bootstrap=50, completion_samples=0, batch_size=16, infill=NO_INFILL),
                            EvalInputs(model_dir=ws / "models/model"), splits=("val",), train_seq_len=64)
    assert m == normal  # the corpus's own split, unigram from its own train split: identical
    assert m["val"]["leak"]["near_duplicate_documents"] == 0 and m["val"]["leak"]["bytes_fraction"] == 0.0


def test_a_jsonl_corpus_is_filtered_deduplicated_and_redacted(ws: Path, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.jsonl"
    lines = [json.dumps({"path": r["path"], "text": r["text"]}) for r in records(ws)]
    secret = f'TOKEN = "{SECRET.value}"\n'
    lines += [lines[0].replace('"path": "', '"path": "copy-of-'),  # an exact duplicate of a text
              "{not json", json.dumps({"path": "keys.py", "text": secret})]
    corpus.write_text("\n".join(lines) + "\n")
    stdout, m = codex_eval("--data", str(corpus))
    assert "duplicates 1" in stdout and "'malformed_jsonl': 1" in stdout and "'github_token': 1" in stdout
    _, folder = codex_eval("--data", str(ws / "corpus"))
    assert m["data"]["documents"] == folder["data"]["documents"] + 1  # keys.py, its token redacted:
    assert m["data"]["bytes"] - folder["data"]["bytes"] < len(secret.encode())


def test_a_parquet_dataset_folder_scores_like_the_same_code_folder(ws: Path, tmp_path: Path) -> None:
    """The corpus as The Stack ships it (parquet shards, text in `text`) scores the same documents and
    bytes as the folder of code it was made from."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = sorted((p.relative_to(ws / "corpus").as_posix(), p.read_text(encoding="utf-8"))
                  for p in (ws / "corpus").rglob("*.py"))
    shards = tmp_path / "shards"
    shards.mkdir()
    half = len(rows) // 2
    for i, part in enumerate((rows[:half], rows[half:])):
        pq.write_table(pa.table({"path": [p for p, _ in part], "text": [t for _, t in part]}),
                       shards / f"train-{i:05d}-of-00002.parquet")
    stdout, m = codex_eval("--data", str(shards))
    _, folder = codex_eval("--data", str(ws / "corpus"))
    assert "(hf)" in stdout
    for key in ("documents", "bytes"):
        assert m["data"][key] == folder["data"][key]
    assert m["data"]["bits_per_byte"] == pytest.approx(folder["data"]["bits_per_byte"])


def test_what_cannot_be_scored_is_one_clear_error(ws: Path) -> None:
    for data, message in [("org/dataset", "is not in the local Hugging Face cache"),
                          ("hf:org/dataset", "nothing is downloaded at run time"),
                          ("missing.jsonl", "--data: missing.jsonl not found")]:
        result = CliRunner().invoke(app, ["eval", "--model", "models/model", "--data", data])
        assert result.exit_code == 2 and message in result.stderr, result.output
    (ws / "empty").mkdir()
    result = CliRunner().invoke(app, ["eval", "--model", "models/model", "--data", "empty"])
    assert result.exit_code == 2 and "no usable documents" in result.stderr
