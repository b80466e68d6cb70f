"""`dvc repro tokenize` in a temporary git+DVC repository on real stdlib code."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import yaml

from codex_ml.handoffs import TokenMeta
from codex_ml.paths import SPLITS
from codex_ml.shards import iter_prepared, open_stream, read_index
from tests.conftest import run
from tests.tokenizekit import folder_bytes

OUTPUTS = ("models/tokenizer", "data/tokens", "metrics/tokenize.json")


def _outputs(repo: Path) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for out in OUTPUTS:
        path = repo / out
        files.update({f"{out}/{k}": v for k, v in folder_bytes(path).items()} if path.is_dir()
                     else {out: path.read_bytes()})
    return files


def test_dvc_repro_tokenize(stdlib_sample: Path, make_repo: Callable[..., Path]) -> None:
    repo = make_repo({"data": {"source": "dir", "path": str(stdlib_sample), "val_fraction": 0.15,
                               "test_fraction": 0.15},
                      "tokenizer": {"vocab_size": 600}})
    run(["dvc", "repro", "tokenize"], repo)  # prepare, then tokenize

    meta = json.loads((repo / "data" / "tokens" / "meta.json").read_text())
    metrics = json.loads((repo / "metrics" / "tokenize.json").read_text())
    assert meta["vocab_size"] == metrics["vocab_size"] == 600 and meta["backend"] == "hf-bpe"  # the default
    for split in SPLITS:
        prepared = [r for _, r in iter_prepared(repo / "data" / "prepared", split)]
        info = meta["splits"][split]
        index = read_index(repo / "data" / "tokens" / info["index"])
        assert index.paths == [r["path"] for r in prepared] and len(prepared) > 0
        stream = open_stream(repo / "data" / "tokens", TokenMeta.load(repo / "data" / "tokens"), split)
        assert len(stream) == info["tokens"] and stream[len(stream) - 1:][0] == meta["eos_id"]
    assert metrics["round_trip_exact"] == 1.0 and metrics["autotokenizer_match"] == 1.0

    # The saved folder is what AutoTokenizer loads, and it gives the ids in the token files.
    from transformers import AutoTokenizer

    auto = AutoTokenizer.from_pretrained(str(repo / "models" / "tokenizer"))
    stream = open_stream(repo / "data" / "tokens", TokenMeta.load(repo / "data" / "tokens"), "val")
    first = next(iter_prepared(repo / "data" / "prepared", "val"))[1]["text"]
    first_tokens = read_index(repo / "data" / "tokens" / "val.index.parquet").tokens[0]
    assert auto.encode(first) == stream[:first_tokens - 1].tolist()

    # DVC recorded the stage with its params, reads the metrics, and has nothing left to do.
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    assert lock["stages"]["tokenize"]["params"]["params.yaml"]["tokenizer"]["vocab_size"] == 600
    assert {o["path"] for o in lock["stages"]["tokenize"]["outs"]} == {"models/tokenizer", "data/tokens",
                                                                      "metrics/tokenize.json"}
    shown = json.loads(run(["dvc", "metrics", "show", "--json"], repo).stdout)
    assert shown[""]["data"]["metrics/tokenize.json"]["data"]["vocab_size"] == 600
    status = run(["dvc", "status", "tokenize"], repo).stdout
    assert "up to date" in status.lower() or status.strip() == ""

    # Rerun in a new process: byte-identical outputs, so dvc.lock does not change.
    before, lock_before = _outputs(repo), (repo / "dvc.lock").read_text()
    run(["dvc", "repro", "--force", "--single-item", "tokenize"], repo)
    assert _outputs(repo) == before
    assert (repo / "dvc.lock").read_text() == lock_before

    # FIM is made where train cuts its windows: a new rate leaves tokenize up to date.
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["train"]["fim"] = {"rate": 0.25, "spm_rate": 1.0, "level": "document"}
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    status = run(["dvc", "status", "tokenize"], repo).stdout
    assert "up to date" in status.lower() or status.strip() == ""

    # Bad params: one clear error naming the key, before any work. (DVC itself removes a stage's
    # outputs before running it, `dvc checkout` restores them; the stage leaves no partial files.)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["tokenizer"]["vocab_size"] = 100
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    failed = run(["dvc", "repro", "tokenize"], repo, check=False)
    assert failed.returncode != 0
    assert ("codex-ml tokenize: error: params.yaml: tokenizer.vocab_size: expected an integer in "
            "[264, 4294967296] for backend hf-bpe, got 100"
            in failed.stderr)
    assert "Traceback" not in failed.stderr
    leftovers = [p.name for d in ("models", "data", "metrics") for p in (repo / d).iterdir()
                 if p.name.startswith(".")]
    assert leftovers == []
    assert not (repo / "models" / "tokenizer").exists() and not (repo / "data" / "tokens").exists()
