"""Infilling evaluation pieces: span sampling on real stdlib documents, prompts that fit the window,
CodeXGLUE's exact match and edit similarity, the batched middle scorer against a plain forward pass,
and HumanEval single-line infilling's tasks run in the sandbox."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from codex_ml.eval.humaneval import load_problems
from codex_ml.eval.humaneval_infill import filled_line, score, tasks
from codex_ml.eval.infill import score_continuations, summarize
from codex_ml.eval.infill_spans import build_prompt, edit_similarity, exact_match, fit, lines_of, sample_spans
from codex_ml.eval.sandbox import Limits
from tests.tokenizekit import sample_documents


@pytest.fixture(scope="module")
def texts(stdlib_sample: Path) -> list[str]:
    return [text for _, text in sample_documents(stdlib_sample)]


@pytest.mark.parametrize("kind", ["line", "block"])
def test_spans_are_whole_nonblank_lines_seeded_and_round_trip(texts: list[str], kind: str) -> None:
    spans = sample_spans(texts, 300, [1337, 7], kind)
    assert len(spans) == 300 and spans == sample_spans(texts, 300, [1337, 7], kind)
    assert spans != sample_spans(texts, 300, [1337, 8], kind)
    assert spans == sorted(spans, key=lambda s: (s.doc, s.line))
    lengths = set()
    for s in spans:
        prefix, middle, suffix = s.pieces(texts[s.doc])
        assert prefix + middle + suffix == texts[s.doc]
        assert s.line > 1 and prefix.endswith("\n") and middle.split("\n")[0].strip()
        assert middle.endswith("\n") or not suffix  # whole lines, newline included
        assert middle.count("\n") == s.lines or (not suffix and middle.count("\n") == s.lines - 1)
        lengths.add(s.lines)
    assert lengths == ({1} if kind == "line" else set(range(2, 9)))


def test_prompts_fit_the_window_and_share_the_prefix() -> None:
    prefix, middle, suffix = list(range(100, 400)), [7, 8, 9], list(range(500, 900))
    q = build_prompt(prefix, middle, suffix, window=64, room=3, eos_id=2, sentinels=(4, 5, 6))
    assert q.fim is not None and len(q.fim) + len(middle) <= 64
    assert q.fim[0] == 4 and q.fim[-1] == 5 and q.fim.index(6) == 1 + 29  # half the budget each
    assert q.fim[1:30] == prefix[-29:] and q.fim[31:-1] == suffix[:28]  # 57 = 64 - 3 - EOS and sentinels
    assert q.l2r == prefix[-29:]  # the same prefix tokens, no EOS: the prefix was cut
    short = build_prompt([11, 12], middle, suffix, window=64, room=3, eos_id=2, sentinels=(4, 5, 6))
    assert short.fim is not None and short.fim[:4] == [2, 4, 11, 12] and len(short.fim) == 64 - 3
    assert short.l2r == [2, 11, 12]  # a whole prefix starts after EOS
    none = build_prompt(prefix, middle, suffix, window=64, room=3, eos_id=2, sentinels=None)
    assert none.fim is None and none.l2r == prefix[-60:]
    assert fit([1, 2], [3, 4], 0) == ([], [], False)
    assert fit([1, 2], [3, 4, 5, 6], 4) == ([1, 2], [3, 4], True)
    assert fit([1, 2, 3, 4, 5], [6], 4) == ([3, 4, 5], [6], False)  # a short suffix leaves room to the prefix


def test_exact_match_and_edit_similarity() -> None:
    assert exact_match("    return x  \n", "    return x\n")
    assert not exact_match("return x\n", "    return x\n")
    assert exact_match("a\nb\n", "a\nb") and not exact_match("a\n", "a\nb\n")
    assert edit_similarity("return x", "return x") == 1.0 and edit_similarity("", "abc") == 0.0
    # CodeXGLUE's fuzz.ratio: 2 * matches / total length, of the stripped texts
    assert edit_similarity("  return xy\n", "return x") == pytest.approx(2 * 8 / 17)
    assert lines_of("a\nb\nc", 2) == "a\nb\n" and lines_of("a\nb", 5) == "a\nb"


def test_the_batched_scorer_matches_a_plain_forward_pass() -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
                                         max_position_embeddings=64)).eval()
    rng = np.random.default_rng(0)
    contexts = [rng.integers(3, 64, size=n).tolist() for n in (5, 17, 1, 30)]
    targets = [rng.integers(3, 64, size=n).tolist() for n in (4, 2, 9, 1)]
    got = score_continuations(model, contexts, targets, batch_size=3, pad_id=0, device=torch.device("cpu"))
    for c, t, nll in zip(contexts, targets, got, strict=True):
        ids = torch.tensor([c + t])
        with torch.no_grad():
            logp = torch.log_softmax(model(ids).logits[0].double(), -1)
        want = -sum(float(logp[len(c) + k - 1, tok]) for k, tok in enumerate(t))
        assert nll == pytest.approx(want, rel=1e-4)


def test_summaries_pair_the_two_numbers_over_the_same_resamples() -> None:
    rows = [{"exact_match": i % 2 == 0, "edit_similarity": 0.5, "bytes": 10, "bits_l2r": 20.0 + i,
             "bits_fim": 10.0 + i} for i in range(40)]
    m = summarize(rows, [i // 4 for i in range(40)], 12, 500, [1, 2], "fim")
    assert m["samples"] == 40 and m["documents"] == 10 and m["exact_match"] == 0.5
    assert m["middle_bpb_l2r"] - m["middle_bpb_fim"] == pytest.approx(m["suffix_gain_bpb"]) == 1.0
    assert m["suffix_gain_bpb_ci"] == pytest.approx([1.0, 1.0])  # every document gains 10 bits of 10 bytes
    assert m["middle_bpb_fim_ci"][0] < m["middle_bpb_fim"] < m["middle_bpb_fim_ci"][1]
    without = [{k: v for k, v in r.items() if k != "bits_fim"} for r in rows]
    l2r = summarize(without, [i // 4 for i in range(40)], 12, 500, [1, 2], "l2r")
    assert "middle_bpb_fim" not in l2r and l2r["middle_bpb_l2r"] == m["middle_bpb_l2r"]


def test_humaneval_single_line_infilling_tasks_pass_with_the_true_line_and_fail_without() -> None:
    from codex_ml.eval.humaneval import execute

    problems = load_problems()
    assert len(tasks(problems)) == 1033  # human-eval-infilling's single-line benchmark
    few = problems[:4]
    items = tasks(few)
    assert all(t.prompt + t.body(t.middle) == p.prompt + p.canonical_solution
               for t in items for p in [few[t.problem]])
    wrong = ["    pass  # nothing\n" for _ in items]
    for written, want in ((["" + t.middle for t in items], 1.0), (wrong, 0.0)):
        bodies: list[list[str]] = [[] for _ in few]
        for t, w in zip(items, written, strict=True):
            bodies[t.problem].append(t.body(filled_line(w)))
        outcomes = [o for runs in execute(few, bodies, Limits(timeout=5.0, cpu_seconds=5)) for o in runs]
        m, rows = score(few, items, written, outcomes, resamples=200, seed=0)
        assert m["tasks"] == len(items) == len(rows) and m["problems"] == 4
        if want == 1.0:
            assert m["pass@1"] == 1.0 and m["exact_match"] == 1.0 and m["pass@1_ci"] == [1.0, 1.0]
        else:
            assert m["pass@1"] < 0.5 and m["exact_match"] == 0.0
