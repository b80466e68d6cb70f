"""End to end through DVC: all five stages in a fresh repository; then, with report.baseline_rev set,
the report alone reruns to diff against the committed run."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from codex_ml.shards import iter_prepared
from tests.chromium import chromium_binary, file_url, open_page
from tests.conftest import run

pytestmark = pytest.mark.slow

# One thread per stage: these models are tiny, and with two threads on a shared machine every small op
# waits for a descheduled thread (see evalkit.one_thread).
PARAMS = {
    # The 22 sample modules under 14 kB (the rest are rejected as too large: fast, and it shows).
    "data": {"source": "dir", "val_fraction": 0.2, "test_fraction": 0.2, "max_file_bytes": 14_100},
    "tokenizer": {"vocab_size": 512, "workers": 1},
    "model": {"name": "llama-micro"},
    "train": {"seq_len": 64, "batch_size": 8, "max_steps": 20, "warmup_steps": 5, "eval_every": 10,
              "eval_batches": 2, "checkpoint_every": 10, "lr": 0.003, "threads": 1},
    "eval": {"bootstrap": 100, "completion_samples": 6, "completion_max_tokens": 16, "threads": 1},
}


def test_dvc_repro_runs_all_five_stages_and_the_report_diffs_a_baseline(
        make_repo: Callable[..., Path], stdlib_sample: Path) -> None:
    params = json.loads(json.dumps(PARAMS))
    params["data"]["path"] = str(stdlib_sample)
    repo = make_repo(params)
    log = run(["dvc", "repro"], repo)
    assert "eval val: bits/byte" in log.stderr and "xz -9e" in log.stderr  # the stage says it too

    shown = json.loads(run(["dvc", "metrics", "show", "--json"], repo).stdout)
    numbers = shown[""]["data"]["metrics/eval.json"]["data"]  # DVC shows numbers (not the interval lists)
    ev = json.loads((repo / "metrics/eval.json").read_text())
    assert numbers["val"]["bits_per_byte"] == ev["val"]["bits_per_byte"]
    prep = json.loads((repo / "metrics/prepare.json").read_text())
    tok = json.loads((repo / "metrics/tokenize.json").read_text())
    for split in ("val", "test"):
        m = ev[split]
        assert m["documents"] == prep["documents"][split] > 0
        assert {k: v for k, v in m.items() if not k.endswith("_ci") and v is not None} == numbers[split]
        assert m["bytes"] == prep["bytes"][split]
        assert m["tokens"] == tok["tokens"][split] + prep["documents"][split]  # text tokens + one EOS each
        low, high = m["bits_per_byte_ci"]
        assert 0 < low <= m["bits_per_byte"] <= high
        uniform_bpb = math.log2(tok["vocab_size"]) * m["tokens"] / m["bytes"]
        assert m["bits_per_byte"] < uniform_bpb  # 20 steps: better than guessing, not yet than unigram
        assert m["completion_samples"] == 6
    table = run(["dvc", "metrics", "show"], repo).stdout  # what `make repro` prints
    assert "val.bits_per_byte" in table and "val.baselines.xz_bpb" in table
    plots = json.loads(run(["dvc", "plots", "show", "--json"], repo).stdout)["data"]
    rows = plots["bits per byte per val document"][0]["content"]["data"]["values"]
    val_docs = [r["path"] for _, r in iter_prepared(repo / "data/prepared", "val")]
    assert sorted(r["path"] for r in rows) == sorted(val_docs)

    md = (repo / "reports/report.md").read_text()
    assert f"Validation bits per byte: {ev['val']['bits_per_byte']:.4f}" in md
    assert f"xz -9e {ev['val']['baselines']['xz_bpb']:.4f}" in md
    assert f"Backend sentencepiece (bpe), vocabulary {tok['vocab_size']} tokens" in md
    assert f"Round trip decode(encode(doc)) == doc on 100.0% of the {tok['checked_documents']} val" in md
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    for stage in ("prepare", "tokenize", "train", "eval"):
        assert f"| {stage} | `" in md, stage  # one provenance row per stage, with its hash
    assert set(lock["stages"]) == {"prepare", "tokenize", "train", "eval", "report"}
    assert "Loss" in md and "figures/train_loss.svg" in md
    assert "metrics/train/plots/metrics" not in md.split("## Evaluation")[0].split("## Training")[1] \
        or "Not logged" in md  # curves drawn; anything absent is named

    if chromium_binary() is not None:
        page = open_page(file_url(repo / "reports/report.html"),
                         "document.querySelectorAll('figure svg').length")
        assert page.errors() == [] and page.value >= 5

    # Review against the committed run: set report.baseline_rev; only the report reruns, and it shows
    # `dvc metrics diff` / `dvc params diff` against that commit.
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "baseline run"], repo)
    current = yaml.safe_load((repo / "params.yaml").read_text())
    current["report"]["baseline_rev"] = "HEAD"
    (repo / "params.yaml").write_text(yaml.safe_dump(current, sort_keys=False))
    rerun = run(["dvc", "repro"], repo)
    out = rerun.stdout + rerun.stderr
    assert "Running stage 'report'" in out
    assert "Running stage 'eval'" not in out and "Running stage 'train'" not in out
    md = (repo / "reports/report.md").read_text()
    head = run(["git", "rev-parse", "HEAD"], repo).stdout.strip()
    diff = md.split("## Comparison with a baseline revision")[1].split("## Provenance")[0]
    assert f"Baseline `HEAD` = `{head[:12]}`" in diff
    assert "No metrics differ from HEAD." in diff
    assert '| `params.yaml` | report.baseline\\_rev | null | "HEAD" | changed |' in diff
