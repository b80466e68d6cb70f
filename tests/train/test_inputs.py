"""What train reads: the tokenize stage's token files, through handoffs.TokenMeta."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from codex_ml.runtime import StageError
from codex_ml.shards import TokenStream, read_index
from codex_ml.training.inputs import load_token_data, unigram_entropy


def test_loads_the_tokenize_stage_format(token_data: Path) -> None:
    data = load_token_data(token_data / "data" / "tokens")
    meta = json.loads((token_data / "data" / "tokens" / "meta.json").read_text())
    assert len(data.train) == meta["splits"]["train"]["tokens"] and len(data.val) > 0
    eos = meta["eos_id"]
    offsets = read_index(token_data / "data" / "tokens" / "train.index.parquet").offsets()
    assert all(data.train[o - 1:o][0] == eos for o in offsets[1:])  # every document ends with EOS


@pytest.mark.parametrize(("damage", "message"), [
    ("no_meta", r"meta.json: not found \(run the tokenize stage"),
    ("short", r"val-00000.bin: \d+ bytes, but .*meta.json says"),
    ("big_id", ">= vocab_size"),
])
def test_bad_token_data_is_a_stage_error(token_data: Path, tmp_path: Path, damage: str, message: str) -> None:
    tokens = tmp_path / "tokens"
    shutil.copytree(token_data / "data" / "tokens", tokens)
    if damage == "no_meta":
        (tokens / "meta.json").unlink()
    elif damage == "short":
        (tokens / "val-00000.bin").write_bytes((tokens / "val-00000.bin").read_bytes()[:-2])
    else:
        meta = json.loads((tokens / "meta.json").read_text())
        meta["vocab_size"] = 100
        (tokens / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(StageError, match=message):
        load_token_data(tokens)


def test_unigram_entropy() -> None:
    assert unigram_entropy(TokenStream([np.array([0, 1, 2, 3] * 10, np.uint16)]), 8) == \
        pytest.approx(np.log(4))
    assert unigram_entropy(TokenStream([np.array([0, 1] * 5, np.uint16), np.array([2, 3] * 5, np.uint16)]),
                           8) == pytest.approx(np.log(4))  # counted across shards
    assert unigram_entropy(TokenStream([np.zeros(50, np.uint16)]), 8) == 0.0
