"""The seeded window sampler and the val windows."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from codex_ml.runtime import StageError
from codex_ml.shards import TokenStream
from codex_ml.training.windows import EvalWindows, TrainWindows, join_windows


def test_train_windows_are_seeded_slices_of_the_stream_addressable_by_position() -> None:
    stream = np.arange(10_000, dtype=np.uint16)
    a = TrainWindows(stream, seq_len=32, count=400, block=16, seed=7)
    starts = [a.start(i) for i in range(400)]
    assert all(0 <= s <= 10_000 - 32 for s in starts) and len(set(starts)) > 350
    window = a[5]["input_ids"]
    assert window.tolist() == list(range(starts[5], starts[5] + 32))
    assert a[5]["labels"].tolist() == window.tolist()  # the model shifts labels itself
    # Resuming at a position reproduces the same windows without replaying the earlier ones.
    fresh = TrainWindows(stream, seq_len=32, count=400, block=16, seed=7)
    assert [fresh.start(i) for i in range(399, 99, -1)] == starts[100:][::-1]
    other = TrainWindows(stream, seq_len=32, count=400, block=16, seed=8)
    assert [other.start(i) for i in range(400)] != starts
    with pytest.raises(IndexError):
        a[400]


def test_final_windows_come_as_consecutive_pieces_that_the_collator_rejoins() -> None:
    stream = np.arange(10_000, dtype=np.uint16)
    plain = TrainWindows(stream, seq_len=32, count=160, block=16, seed=7)
    # The last 4 steps (64 items) of 10: 8 windows of 64 tokens per step, each as 2 pieces of 32.
    final = TrainWindows(stream, seq_len=32, count=160, block=16, seed=7, final_seq_len=64, final_from=96)
    assert [final.start(i) for i in range(96)] == [plain.start(i) for i in range(96)]  # before: unchanged
    step = [final[i] for i in range(96, 112)]
    assert {int(item["join"]) for item in step} == {2} and {int(final[95]["join"])} == {1}
    for first, second in zip(step[::2], step[1::2], strict=True):
        assert second["input_ids"][0] == first["input_ids"][-1] + 1  # the piece that follows
    batch = join_windows([dict(item) for item in step])
    assert set(batch) == {"input_ids", "labels"} and batch["input_ids"].shape == (8, 64)
    starts = batch["input_ids"][:, 0].tolist()
    for row, start in zip(batch["input_ids"].tolist(), starts, strict=True):
        assert row == list(range(start, start + 64))  # contiguous text, not two unrelated windows
    assert torch.equal(batch["labels"], batch["input_ids"])
    # A process's share of a step (the Trainer splits a step into contiguous runs of items) rejoins
    # into whole windows of its own, and a resumed run reads the same items from the same position.
    assert torch.equal(join_windows([final[i] for i in range(104, 112)])["input_ids"], batch["input_ids"][4:])
    again = TrainWindows(stream, seq_len=32, count=160, block=16, seed=7, final_seq_len=64, final_from=96)
    assert [again.start(i) for i in range(159, 95, -1)] == [final.start(i) for i in range(159, 95, -1)]
    plain_batch = join_windows([plain[i] for i in range(16)])
    assert plain_batch["input_ids"].shape == (16, 32)
    with pytest.raises(StageError, match=r"fewer than train\.final_seq_len=20000"):
        TrainWindows(stream, seq_len=32, count=160, block=16, seed=7, final_seq_len=20_000, final_from=96)


def test_windows_over_shards_are_the_windows_over_one_stream() -> None:
    """Shards of uneven sizes (one empty) read as one stream: every window, including those that
    cross a shard boundary, is the same tokens as from the unsharded split."""
    whole = np.arange(10_000, dtype=np.uint16)
    sharded = TokenStream([whole[:3_001], whole[3_001:3_001], whole[3_001:3_020], whole[3_020:]])
    a = TrainWindows(whole, seq_len=32, count=400, block=16, seed=7)
    b = TrainWindows(sharded, seq_len=32, count=400, block=16, seed=7)
    assert len(sharded) == len(whole)
    assert all(np.array_equal(a[i]["input_ids"], b[i]["input_ids"]) for i in range(400))
    assert sharded[2_990:3_030].tolist() == list(range(2_990, 3_030))  # across three shards
    assert sharded[9_990:20_000].tolist() == list(range(9_990, 10_000)) and len(sharded[5:5]) == 0
    e = EvalWindows(sharded, seq_len=100, count=8)
    f = EvalWindows(whole, seq_len=100, count=8)
    assert all(np.array_equal(e[i]["input_ids"], f[i]["input_ids"]) for i in range(8))


def test_eval_windows_are_fixed_and_span_the_split() -> None:
    stream = np.arange(5_000, dtype=np.uint16)
    w = EvalWindows(stream, seq_len=100, count=8)
    assert len(w) == 8 and w[0]["input_ids"][0] == 0 and w[7]["input_ids"][-1] == 4_999
    assert w.starts.tolist() == EvalWindows(stream, seq_len=100, count=8).starts.tolist()


def test_windows_longer_than_the_split_are_a_stage_error() -> None:
    with pytest.raises(StageError, match=r"train split has 10 tokens, fewer than train\.seq_len=64"):
        TrainWindows(np.zeros(10, np.uint16), 64, 8, 8, 0)
    with pytest.raises(StageError, match="val split has 10 tokens"):
        EvalWindows(np.zeros(10, np.uint16), 64, 8)
