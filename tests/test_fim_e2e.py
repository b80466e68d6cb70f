"""End to end, small: a tiny model trained on FIM windows (half its documents transformed) fills in
lines that only their suffix implies far better with the suffix than left to right, as the infilling
evaluation measures it.

Each document is `def f():`, an assignment of a random value, and an assert that repeats it: left to
right the assignment's value is a guess, with the suffix it is a copy. The training loop is the plain
one of the eval tests (forward, backward, AdamW); the windows are the FIM windows training will read."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from codex_ml.eval.infill import InfillSettings, run_kind
from codex_ml.fim.windows import MARGIN, FimConfig, FimWindows
from codex_ml.tokenization import load_tokenizer, train_tokenizer
from tests.tokenizekit import small_params

WINDOW, BATCH, STEPS = 64, 32, 250


def documents(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    names = list("abcdefghjkmnpqrstuvwxyz")
    return [f"def f():\n    {n} = {v}\n    assert {n} == {v}\n"
            for n, v in zip(rng.choice(names, size=n), rng.integers(10, 100, size=n), strict=True)]


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One torch thread: a tiny model gains nothing from more, and loses much on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
def test_a_tiny_fim_model_fills_in_what_the_suffix_implies(tmp_path: Path) -> None:
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    train, val = documents(3000, 1), documents(80, 2)
    trained = train_tokenizer(train, small_params("hf-bpe", "bpe", 300))
    trained.save(tmp_path / "tokenizer")
    tok = load_tokenizer(tmp_path / "tokenizer")
    assert tok.fim_ids is not None
    eos, pad = tok.special_ids.eos, tok.special_ids.pad
    stream = np.concatenate([np.asarray([*ids, eos]) for ids in tok.encode_batch(train, 1)]).astype(np.int64)
    fim = FimWindows(FimConfig(rate=0.5, spm_rate=0.5, seed=0, level="context", sentinels=tok.fim_ids,
                               eos_id=eos, pad_id=pad), tok.hf)

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=tok.vocab_size, hidden_size=96, intermediate_size=192, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=128, pad_token_id=pad,
        eos_token_id=eos, bos_token_id=tok.special_ids.bos))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    rng = np.random.default_rng(0)
    model.train()
    for step in range(STEPS):
        starts = rng.integers(0, len(stream) - WINDOW - MARGIN, size=BATCH)
        made = [fim.context(stream[s:s + WINDOW + MARGIN], (step, j), WINDOW) for j, s in enumerate(starts)]
        x, y = (torch.from_numpy(np.stack(t)) for t in zip(*made, strict=True))
        loss = model(input_ids=x, labels=y).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    assert fim.counts.transformed > 0.4 * fim.counts.fragments and fim.counts.spm > 0

    settings = InfillSettings(window=128, batch_size=32, eos_id=eos, pad_id=pad, device=torch.device("cpu"),
                              sentinels=tok.fim_ids, resamples=500, max_new_tokens=16)
    auto = AutoTokenizer.from_pretrained(str(tmp_path / "tokenizer"))
    metrics, rows = run_kind(model, auto, val, [f"v{i}.py" for i in range(len(val))], "line", 200, [1, 2],
                             settings)
    implied = [r for r in rows if r["line"] == 2]  # the assignment: its suffix repeats it
    assert len(implied) > 40 and metrics["mode"] == "fim"
    with_suffix = sum(r["bits_fim"] for r in implied) / sum(r["bytes"] for r in implied)
    without = sum(r["bits_l2r"] for r in implied) / sum(r["bytes"] for r in implied)
    assert with_suffix < 0.5 * without
    assert metrics["suffix_gain_bpb_ci"][0] > 0  # over all sampled lines, with its interval
    assert len(rows) == metrics["samples"] and all(isinstance(r["completion"], str) for r in rows)
