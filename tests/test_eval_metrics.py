"""Eval numbers against cases computed by hand or by an independent, naive route."""

from __future__ import annotations

import math
import shutil
import subprocess
import sysconfig
from pathlib import Path

import numpy as np
import pytest
import torch

from codex_ml.eval import baselines
from codex_ml.eval.score import DocScores, score_documents
from codex_ml.eval.stage import split_metrics
from codex_ml.handoffs import WIDE_RATIO, too_wide
from codex_ml.stats.bootstrap import ratio_interval, resample_counts
from tests.evalkit import EOS, PAD, VOCAB, stdlib_docs, tiny_llama

pytestmark = pytest.mark.usefixtures("one_thread")

CPU = torch.device("cpu")


def naive_nll(model: torch.nn.Module, ids: np.ndarray, context: int) -> tuple[float, int]:
    """Sum of NLL over s[1:] of s = [EOS] + ids, each target predicted from at most `context`
    preceding tokens by its own forward pass: no windows, no batching, no padding."""
    s = torch.tensor([EOS, *ids.tolist()])
    total, hits = 0.0, 0
    with torch.no_grad():
        for t in range(1, len(s)):
            logits = model(input_ids=s[max(0, t - context):t][None]).logits[0, -1].double()
            total += float(torch.logsumexp(logits, -1) - logits[s[t]])
            hits += int(int(logits.argmax()) == int(s[t]))
    return total, hits


@pytest.mark.parametrize("batch_size", [1, 3])
def test_sliding_window_equals_per_token_reference(batch_size: int) -> None:
    # stride 1: every target after the first window sees exactly `window` tokens; inside the first,
    # all of its prefix. Documents of different lengths share batches (right padding).
    model = tiny_llama(seed=1, window=64)
    docs = [d[:n] for d, n in zip(stdlib_docs(3, 200), (30, 47, 12), strict=True)]
    window = 16
    got = score_documents(model, docs, window=window, stride=1, batch_size=batch_size, eos_id=EOS,
                          pad_id=PAD, device=CPU)
    for i, d in enumerate(docs):
        ref, hits = naive_nll(model, d, window)
        assert got.tokens[i] == len(d)
        assert got.nll[i] == pytest.approx(ref, rel=1e-5)
        assert got.correct[i] == hits


def test_window_longer_than_document_is_one_full_forward() -> None:
    model = tiny_llama(seed=2, window=64)
    doc = stdlib_docs(1, 40)[0]
    got = score_documents(model, [doc], window=64, stride=32, batch_size=4, eos_id=EOS, pad_id=PAD,
                          device=CPU)
    s = torch.tensor([EOS, *doc.tolist()])
    with torch.no_grad():
        ref = torch.nn.functional.cross_entropy(model(input_ids=s[None, :-1]).logits[0].double(), s[1:],
                                                reduction="sum")
    assert got.nll[0] == pytest.approx(float(ref), rel=1e-6)


def test_uniform_model_bits_per_byte_by_hand() -> None:
    # A model whose output layer is zero predicts 1/V for every token: each token costs log2(V) bits.
    # Byte ids: a document of b bytes has b + 1 targets (its bytes and its EOS).
    model = tiny_llama(seed=3, window=32)
    with torch.no_grad():
        model.lm_head.weight.zero_()
    docs = stdlib_docs(3, 100)
    scores = score_documents(model, docs, window=32, stride=16, batch_size=2, eos_id=EOS, pad_id=PAD,
                             device=CPU)
    nbytes = np.array([len(d) - 1 for d in docs], dtype=np.float64)
    m = split_metrics(scores, nbytes, np.zeros(3), np.zeros(3), resamples=50, seed=[0])
    assert m["loss"] == pytest.approx(math.log(VOCAB), rel=1e-6)
    assert m["perplexity"] == pytest.approx(VOCAB, rel=1e-5)
    assert m["bits_per_byte"] == pytest.approx((300 + 3) * math.log2(VOCAB) / 300, rel=1e-6)
    assert m["accuracy"] == 0.0  # all logits tie; argmax picks id 0, a byte no document contains
    assert m["tokens"] == 303 and m["bytes"] == 300 and m["documents"] == 3
    assert m["completion_exact_match"] is None and m["completion_exact_match_ci"] is None


def test_split_metrics_ratios_and_intervals() -> None:
    scores = DocScores(nll=np.array([10.0, 30.0, 20.0]), tokens=np.array([10, 20, 10]),
                       correct=np.array([5, 10, 2]))
    nbytes = np.array([40.0, 80.0, 40.0])
    m = split_metrics(scores, nbytes, matches=np.array([1.0, 0.0, 2.0]), samples=np.array([2.0, 0.0, 2.0]),
                      resamples=500, seed=[7])
    assert m["loss"] == pytest.approx(60 / 40)
    assert m["perplexity"] == pytest.approx(math.exp(1.5))
    assert m["bits_per_byte"] == pytest.approx(60 / math.log(2) / 160)
    assert m["accuracy"] == pytest.approx(17 / 40)
    assert m["completion_exact_match"] == pytest.approx(3 / 4)
    assert m["completion_samples"] == 4
    for key in ("loss", "bits_per_byte", "accuracy", "completion_exact_match"):
        low, high = m[f"{key}_ci"]
        assert low <= m[key] <= high, key
    assert m["perplexity_ci"] == pytest.approx([math.exp(x) for x in m["loss_ci"]])
    assert m == split_metrics(scores, nbytes, np.array([1.0, 0.0, 2.0]), np.array([2.0, 0.0, 2.0]), 500, [7])


def test_a_split_dominated_by_one_unlike_document_is_flagged_too_wide_to_rank() -> None:
    # 30 documents at ~1 bit/byte, then one large data table at 5: as a 140 kB table did in a 2-document val
    rng = np.random.default_rng(3)
    nbytes = np.append(rng.uniform(1000, 3000, 30), 40_000.0)
    bits = np.append(nbytes[:30] * rng.uniform(0.9, 1.1, 30), nbytes[30] * 5)
    tokens = (nbytes // 3).astype(np.int64)
    nothing = np.zeros(len(nbytes))

    def metrics(keep: slice) -> dict:
        scores = DocScores(nll=bits[keep] * math.log(2), tokens=tokens[keep], correct=tokens[keep] // 2)
        return split_metrics(scores, nbytes[keep], nothing[keep], nothing[keep], resamples=500, seed=[1])

    uneven, even = metrics(slice(None)), metrics(slice(0, 30))
    low, high = uneven["bits_per_byte_ci"]
    assert high > WIDE_RATIO * low and uneven["bits_per_byte_ci_too_wide"] is True
    low, high = even["bits_per_byte_ci"]
    assert high < WIDE_RATIO * low and even["bits_per_byte_ci_too_wide"] is False
    assert not too_wide(None) and too_wide([1.0, 1.51]) and not too_wide([1.0, 1.5])


def test_bootstrap_is_seeded_and_exact_when_every_document_agrees() -> None:
    counts = resample_counts(20, 300, [1, 2])
    assert counts.shape == (300, 20) and (counts.sum(axis=1) == 20).all()
    assert np.array_equal(counts, resample_counts(20, 300, [1, 2]))
    assert not np.array_equal(counts, resample_counts(20, 300, [1, 3]))
    same = ratio_interval(np.full(20, 3.0), np.full(20, 2.0), counts)
    assert same == pytest.approx((1.5, 1.5))
    rng = np.random.default_rng(0)
    numer, denom = rng.uniform(0, 5, 20), rng.uniform(1, 3, 20)
    low, high = ratio_interval(numer, denom, counts)
    assert low < numer.sum() / denom.sum() < high
    assert ratio_interval(numer, denom, resample_counts(20, 0, 0)) is None


def test_compressor_baselines_match_the_command_line_tools(tmp_path: Path) -> None:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    data = (stdlib / "bisect.py").read_bytes() + (stdlib / "heapq.py").read_bytes()
    for tool, args, fn in (("gzip", ["-9", "-n", "-c"], baselines.gzip_bpb),
                           ("xz", ["-9e", "-c"], baselines.xz_bpb)):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed")
        size = len(subprocess.run([tool, *args], input=data, capture_output=True, check=True).stdout)
        assert fn(data) == pytest.approx(size * 8 / len(data), abs=1e-12), tool


def test_unigram_baseline_by_hand() -> None:
    # train: token 0 three times, token 1 once, vocab 4 -> add-one: p = (4, 2, 1, 1) / 8
    log2p = baselines.unigram_log2_probs(np.array([0, 0, 1, 0]), 4)
    assert np.allclose(2.0 ** log2p, [4 / 8, 2 / 8, 1 / 8, 1 / 8])
    assert baselines.unigram_bits(log2p, np.array([0, 1, 3])) == pytest.approx(1 + 2 + 3)
    with pytest.raises(ValueError, match="vocab_size"):
        baselines.unigram_log2_probs(np.array([0, 5]), 4)
