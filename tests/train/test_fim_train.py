"""train.fim: its params checked before work, FIM train windows that are a pure function of their
position (the same bytes for any read order or loader workers, at both levels), and a pretrained base
without sentinels refused before anything is read or written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from codex_ml.fim.sentinels import FimError
from codex_ml.handoffs import TokenMeta
from codex_ml.params import FimParams, ParamsError, parse_params
from codex_ml.shards import open_stream
from codex_ml.training.fim import check_fim, fim_windows
from codex_ml.training.windows import TrainWindows, join_windows
from tests.pretrainedkit import make_pretrained, params_for


def test_bad_fim_params_are_one_error_each_naming_the_key() -> None:
    with pytest.raises(ParamsError) as err:
        parse_params({"train": {"fim": {"rate": 1.5, "spm_rate": -0.1, "level": "file"}}})
    lines = err.value.problems
    assert len(lines) == 3
    assert any(line.startswith("params: train.fim.rate: expected") and "got 1.5" in line for line in lines)
    assert any(line.startswith("params: train.fim.spm_rate: expected") for line in lines)
    assert any(line.startswith("params: train.fim.level: expected") for line in lines)


def windows(token_data: Path, fim: FimParams) -> TrainWindows:
    meta = TokenMeta.load(token_data / "data/tokens")
    train = open_stream(token_data / "data/tokens", meta, "train")
    tok = check_fim(fim, token_data / "models/tokenizer", None)
    made = fim_windows(fim, 7, tok, token_data / "data/tokens", meta, train) if tok else (None, None)
    # 6 steps of 8 windows of 32 tokens; the last 2 steps on windows of 64 (two pieces each)
    return TrainWindows(train, 32, 48, 8, seed=7, final_seq_len=64, final_from=32, fim=made[0],
                        offsets=made[1])


@pytest.mark.parametrize("level", ["context", "document"])
def test_fim_windows_are_the_same_bytes_in_any_order_and_any_worker_count(token_data: Path,
                                                                          level: str) -> None:
    fim = FimParams(rate=0.5, spm_rate=0.5, level=level)
    made = windows(token_data, fim)
    forward = [made[i] for i in range(48)]
    backward = windows(token_data, fim)
    assert all(torch.equal(backward[i]["input_ids"], forward[i]["input_ids"]) and
               torch.equal(backward[i]["labels"], forward[i]["labels"]) for i in range(47, -1, -1))
    if level == "context":  # loader workers each read their own share of a step from a copy
        loader = torch.utils.data.DataLoader(windows(token_data, fim), batch_size=8, num_workers=2,
                                             collate_fn=join_windows)
        for step, batch in enumerate(loader):
            assert torch.equal(batch["input_ids"], join_windows(forward[8 * step:8 * step + 8])["input_ids"])
        ids = torch.cat([w["input_ids"] for w in forward])
        assert bool((ids == 4).any()) and bool((ids == 6).any())  # <fim_prefix>, <fim_suffix>
    assert all(w["input_ids"].shape == (32,) for w in forward)
    left_to_right = windows(token_data, FimParams(rate=0.0))
    plain = [left_to_right[i]["input_ids"] for i in range(48)]
    assert not bool((torch.cat(plain) == 4).any())
    # rate 0 reads the same windows: FIM changed some of them, the rest are left to right
    same = sum(torch.equal(a["input_ids"], b) for a, b in zip(forward, plain, strict=True))
    assert 0 < same < 48


def test_fim_on_a_base_without_sentinels_is_refused_before_any_work(tmp_path: Path) -> None:
    from codex_ml.training.stage import TrainPaths, run_training

    texts = ["def f(x):\n    return x + 1\n"] * 20
    base = make_pretrained("gpt2", texts, tmp_path / "gpt2")
    params = params_for(base)
    params = params.replace(train=params.train.replace(fim=FimParams(rate=0.5)))
    paths = TrainPaths.under(tmp_path / "work")  # no token files at all: refused before they are read
    paths.tokenizer.parent.mkdir(parents=True)
    paths.tokenizer.symlink_to(base)
    with pytest.raises(FimError) as err:
        run_training(params, paths)
    message = str(err.value)
    assert message.startswith(f"model.pretrained {base}: its tokenizer has no fill-in-the-middle sentinel")
    assert "<fim_prefix>" in message and "set train.fim.rate: 0" in message
    assert not paths.checkpoints.exists() and not paths.model.exists() and not paths.metrics.exists()
    # StarCoder's sentinels in the base's tokenizer: FIM finds them
    starcoder = make_pretrained("gpt2", texts, tmp_path / "starcoder", fim=True)
    found = check_fim(FimParams(rate=0.5), starcoder, params_for(starcoder).model and None)
    assert found is not None and found.sentinels.spelling.prefix == "<fim_prefix>"
    assert np.all(np.asarray(found.sentinels.ids()) >= 1)
