"""End to end through DVC: real prepare + tokenize + train in a fresh repository, then an experiment."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from tests.conftest import merge, run
from tests.train.conftest import MICRO

pytestmark = pytest.mark.slow


def test_dvc_repro_train_then_an_experiment_with_another_lr_starts_fresh(
        make_repo: Callable[..., Path], stdlib_sample: Path) -> None:
    params = merge(MICRO, {"data": {"source": "dir", "path": str(stdlib_sample), "val_fraction": 0.2},
                           "tokenizer": {"vocab_size": 512}})
    repo = make_repo(params)
    run(["dvc", "repro", "train"], repo)

    model = AutoModelForCausalLM.from_pretrained(repo / "models/model")
    tok = AutoTokenizer.from_pretrained(repo / "models/model")
    meta = json.loads((repo / "data/tokens/meta.json").read_text())
    assert model.config.vocab_size == meta["vocab_size"] == len(tok)
    assert model.config.eos_token_id == meta["eos_id"] == tok.eos_token_id
    text = "def parse(self, text):\n    return text.split()\n"
    assert tok.decode(tok(text)["input_ids"]) == text

    shown = json.loads(run(["dvc", "metrics", "show", "--json"], repo).stdout)
    train = shown[""]["data"]["metrics/train/metrics.json"]["data"]
    assert train["step"] == MICRO["train"]["max_steps"]
    assert {"loss", "learning_rate", "grad_norm", "tokens_per_s"} <= set(train["train"])
    assert train["val"]["loss"] < math.log(meta["vocab_size"])  # better than uniform guessing
    plots = run(["dvc", "plots", "show", "--json"], repo).stdout
    assert "train/loss vs val/loss" in plots and "metrics/train/plots/metrics/val/loss.tsv" in plots

    status = run(["dvc", "status", "train"], repo).stdout
    assert "up to date" in status or status.strip() == ""
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "trained"], repo)

    exp = run(["dvc", "exp", "run", "-S", "train.lr=0.001", "train"], repo)
    log = exp.stdout + exp.stderr
    assert "train.lr: 0.003 -> 0.001): not resumed" in log and "starting fresh" in log
    assert "Running stage 'prepare'" not in log and "Running stage 'tokenize'" not in log
    # Train metrics are committed with the experiment, so `dvc exp show` compares the two runs.
    rows = json.loads(run(["dvc", "exp", "show", "--json"], repo).stdout)
    main = next(r for r in rows if r.get("name") == "main")
    exp_rev = main["experiments"][0]["revs"][0]
    before = main["data"]["metrics"]["metrics/train/metrics.json"]["data"]["val"]["loss"]
    after = exp_rev["data"]["metrics"]["metrics/train/metrics.json"]["data"]["val"]["loss"]
    assert before == train["val"]["loss"] and after != before
