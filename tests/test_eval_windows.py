"""Sliding windows: every token scored exactly once, never with less context than promised."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codex_ml.eval.windows import plan, plan_document


@st.composite
def window_cases(draw: st.DrawFn) -> tuple[int, int, int]:
    window = draw(st.integers(2, 64))
    stride = draw(st.integers(1, window - 1))
    n_targets = draw(st.integers(1, 400))
    return n_targets, window, stride


@settings(max_examples=300, deadline=None)
@given(window_cases())
def test_every_target_scored_once_with_its_context(case: tuple[int, int, int]) -> None:
    n_targets, window, stride = case
    windows = plan_document(0, n_targets, window, stride)
    scored = []
    for w in windows:
        assert 0 <= w.start < w.first <= w.end <= n_targets  # inside the document's sequence
        assert w.length <= window
        for t in range(w.first, w.end + 1):
            scored.append(t)
            context = t - w.start  # tokens of s before target t inside this window
            if w.start == 0:
                assert context == t  # everything before it: the EOS marker and all earlier tokens
            else:
                assert context >= window - stride + 1
    assert sorted(scored) == list(range(1, n_targets + 1))  # each target exactly once
    assert len(scored) == n_targets


def test_hand_example() -> None:
    # s = [EOS] + 10 ids; window 4, stride 2: the first window scores targets 1..4 from s[0:4], then
    # each window ends 2 further on and scores only its 2 new targets.
    got = [(w.start, w.end, w.first) for w in plan_document(0, 10, 4, 2)]
    assert got == [(0, 4, 1), (2, 6, 5), (4, 8, 7), (6, 10, 9)]
    # a short document is one window
    assert [(w.start, w.end, w.first) for w in plan_document(0, 3, 4, 2)] == [(0, 3, 1)]
    # a last step shorter than the stride still fills its window with context
    assert [(w.start, w.end, w.first) for w in plan_document(0, 5, 4, 2)] == [(0, 4, 1), (1, 5, 5)]


def test_plan_order_is_deterministic_and_longest_first() -> None:
    lengths = [3, 50, 7, 50, 1]
    a, b = plan(lengths, 16, 8), plan(list(lengths), 16, 8)
    assert a == b
    assert [w.length for w in a] == sorted((w.length for w in a), reverse=True)
    assert sorted(w.doc for w in a if w.first == 1) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize(("window", "stride"), [(1, 1), (8, 0), (8, 8), (8, 9)])
def test_bad_window_or_stride(window: int, stride: int) -> None:
    with pytest.raises(ValueError, match=r"window|stride"):
        plan_document(0, 10, window, stride)
