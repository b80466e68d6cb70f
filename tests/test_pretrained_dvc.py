"""The fine-tuning profile end to end through DVC: one `dvc exp run -S model=pretrained -S
model.pretrained=...` in a fresh repository, on a GPT-2-family folder with its own tokenizer."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from codex_ml.handoffs import TokenMeta
from codex_ml.shards import iter_prepared, open_stream, read_index
from tests.conftest import run
from tests.pretrainedkit import make_pretrained

pytestmark = pytest.mark.slow


def test_dvc_exp_run_with_the_pretrained_profile_trains_on_the_models_own_ids(
        make_repo: Callable[..., Path], stdlib_sample: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    texts = [p.read_text(encoding="utf-8") for p in sorted(stdlib_sample.rglob("*.py"))]
    base = make_pretrained("gpt2", texts, tmp_path / "base-model")  # outside the repository
    repo = make_repo(hydra=True)
    proc = run(["dvc", "exp", "run", "-S", "model=pretrained", "-S", f"model.pretrained={base}",
                "-S", "train=quick", "-S", "train.lr=0.003", "-S", "train.threads=1",
                "-S", "data=dir", "-S", f"data.path={stdlib_sample}", "-S", "data.max_file_bytes=14100",
                "-S", "data.val_fraction=0.2", "-S", "data.test_fraction=0.2",
                # 22 files: below the dir profile's floors for val and test
                "-S", "data.held_out.min_documents=0", "-S", "data.held_out.min_bytes=0",
                "-S", "eval.bootstrap=50", "-S", "eval.completion_samples=4", "-S", "eval.threads=1",
                "-S", "eval.infill.line=4", "-S", "eval.infill.block=2"], repo)
    log = proc.stdout + proc.stderr
    assert "encoding with its own tokenizer" in log and "nothing is trained" in log

    # The token files are the model's own ids, as AutoTokenizer on the model folder gives them.
    own = AutoTokenizer.from_pretrained(base)
    meta = json.loads((repo / "data/tokens/meta.json").read_text())
    val = [r for _, r in iter_prepared(repo / "data/prepared", "val")]
    tokens = open_stream(repo / "data/tokens", TokenMeta.load(repo / "data/tokens"), "val")
    offsets = read_index(repo / "data/tokens/val.index.parquet").offsets()
    assert val and [tokens[offsets[i]:offsets[i + 1] - 1].tolist() for i in range(len(val))] == \
        [own(r["text"], add_special_tokens=False)["input_ids"] for r in val]
    assert meta["base_model"]["pretrained"] == str(base)

    # models/model: a plain merged model with the model's tokenizer, the adapter beside it.
    model = AutoModelForCausalLM.from_pretrained(repo / "models/model")
    tok = AutoTokenizer.from_pretrained(repo / "models/model")
    assert tok.get_vocab() == own.get_vocab() and model.config.eos_token_id == own.eos_token_id
    assert (repo / "models/model/adapter/adapter_config.json").is_file()

    # "Did fine-tuning help?": one number per split, in dvc metrics show and in the report.
    shown = json.loads(run(["dvc", "metrics", "show", "--json"], repo).stdout)
    ev = shown[""]["data"]["metrics/eval.json"]["data"]
    assert ev["val"]["bits_per_byte"] < ev["val"]["baselines"]["base_model_bpb"]
    tokenize = json.loads((repo / "metrics/tokenize.json").read_text())
    assert tokenize["backend"] == "pretrained"
    assert tokenize["base_model"]["sha256"] == meta["base_model"]["sha256"]  # the base's lineage
    md = (repo / "reports/report.md").read_text()
    assert "base model, before fine-tuning" in md
    gen = run(["codex", "generate", "--model", "models/model", "def parse(", "--max-new-tokens", "8"], repo)
    assert gen.stdout.startswith("def parse(")

    # A base kept in the repository under DVC is a dependency DVC sees: a new or changed one there
    # makes tokenize (and, through meta.json's hashes, train and eval) stale.
    assert "tokenize" not in run(["dvc", "status", "tokenize"], repo).stdout
    shutil.copytree(base, repo / "base-models/my-model")
    run(["dvc", "add", "base-models/my-model"], repo)
    status = run(["dvc", "status", "tokenize"], repo).stdout
    assert "tokenize" in status and "base-models" in status
