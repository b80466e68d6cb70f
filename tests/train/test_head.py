"""models/head.py: the output layer's loss computed block by block, checked against transformers' own."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from codex_ml.eval.score import score_documents
from codex_ml.models import Vocab, apply_lora, build_model, head
from codex_ml.params import LoraParams, ModelParams
from tests.evalkit import EOS, PAD, stdlib_docs

VOCAB = Vocab(size=384, pad_id=0, bos_id=1, eos_id=2)


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    # 3 rows of 384 fp32 logits per block: many blocks, and a ragged last one
    monkeypatch.setattr(head, "CPU_BLOCK_BYTES", 3 * 4 * VOCAB.size)


def micro(seed: int = 0, name: str = "llama-micro") -> torch.nn.Module:
    return build_model(ModelParams(name=name), VOCAB, seq_len=32, seed=seed)


def batch(seed: int = 0, shape: tuple[int, int] = (3, 32)) -> torch.Tensor:
    return torch.randint(3, VOCAB.size, shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("num_items", [None, 70])
def test_matches_cross_entropy_of_explicit_logits(small_blocks: None, num_items: int | None) -> None:
    g = torch.Generator().manual_seed(0)
    h = torch.randn(20, 16, generator=g, requires_grad=True)
    w = torch.randn(VOCAB.size, 16, generator=g, requires_grad=True)
    t = torch.randint(0, VOCAB.size, (20,), generator=g)
    t[[0, 7, 19]] = head.IGNORE
    ref = F.cross_entropy(h @ w.t(), t, ignore_index=head.IGNORE, reduction="sum" if num_items else "mean")
    ref = ref / num_items if num_items else ref
    ref_h, ref_w = torch.autograd.grad(ref * 3.0, (h, w))
    got = head.linear_cross_entropy(h, w, t, num_items)
    got_h, got_w = torch.autograd.grad(got * 3.0, (h, w))  # backward scales by the incoming gradient
    assert float(got.detach()) == pytest.approx(float(ref.detach()), rel=1e-6)
    torch.testing.assert_close(got_h, ref_h, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(got_w, ref_w, rtol=1e-5, atol=1e-7)
    with torch.no_grad():  # the same loss without any gradient work
        assert float(head.linear_cross_entropy(h, w, t, num_items)) == pytest.approx(float(ref), rel=1e-6)


@pytest.mark.parametrize("name", ["llama-micro", "qwen3-micro"])
def test_fused_model_matches_transformers_loss_and_every_gradient(small_blocks: None, name: str) -> None:
    plain, fused = micro(name=name), micro(name=name)
    assert head.fuse_loss(fused)
    x = batch()
    for kwargs in ({}, {"num_items_in_batch": torch.tensor(500)}):
        plain.zero_grad()
        fused.zero_grad()
        ref = plain(input_ids=x, labels=x, **kwargs).loss
        out = fused(input_ids=x, labels=x, **kwargs)
        assert out.logits is None  # no [tokens, vocab] tensor was made
        assert float(out.loss.detach()) == pytest.approx(float(ref.detach()), rel=1e-6)
        ref.backward()
        out.loss.backward()
        for (name, a), (_, b) in zip(plain.named_parameters(), fused.named_parameters(), strict=True):
            assert a.grad is not None and b.grad is not None, name
            torch.testing.assert_close(b.grad, a.grad, rtol=1e-4, atol=1e-7, msg=name)
    # without labels the model is untouched: the same logits as the plain model
    with torch.no_grad():
        torch.testing.assert_close(fused(input_ids=x).logits, plain(input_ids=x).logits)
    assert set(fused.state_dict()) == set(plain.state_dict())  # saving sees the same module


def test_bf16_autocast_stays_close_to_fp32() -> None:
    plain, fused = micro(), micro()
    head.fuse_loss(fused)
    x = batch()
    ref = plain(input_ids=x, labels=x).loss
    ref.backward()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = fused(input_ids=x, labels=x).loss
    got.backward()
    assert got.dtype == torch.float32
    assert float(got.detach()) == pytest.approx(float(ref.detach()), rel=1e-2)
    a = plain.model.embed_tokens.weight.grad
    b = fused.model.embed_tokens.weight.grad
    assert a is not None and b is not None and b.dtype == torch.float32
    assert float((a - b).norm() / a.norm()) < 0.05


def test_lora_model_is_fused_through_peft_and_trains_only_the_adapters() -> None:
    lora = LoraParams(enabled=True, r=4, alpha=8, dropout=0.0, target_modules=["q_proj", "v_proj"])
    plain, fused = apply_lora(micro(), lora), apply_lora(micro(), lora)
    assert head.fuse_loss(fused)
    x = batch(1)
    plain(input_ids=x, labels=x).loss.backward()
    fused(input_ids=x, labels=x).loss.backward()
    grads = {n: p.grad for n, p in fused.named_parameters() if p.grad is not None}
    assert grads and all("lora_" in n for n in grads)
    for n, p in plain.named_parameters():
        if p.grad is not None:
            torch.testing.assert_close(grads[n], p.grad, rtol=1e-4, atol=1e-7, msg=n)


def test_models_without_a_plain_head_keep_their_own_forward() -> None:
    lora = LoraParams(enabled=True, r=4, alpha=8, dropout=0.0, target_modules=["lm_head"])
    model = apply_lora(micro(), lora)
    assert head.plain_head(model) is None  # a LoRA-wrapped head is not a plain Linear
    assert not head.fuse_loss(model)
    from transformers import GPT2Config, GPT2LMHeadModel

    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=VOCAB.size, n_embd=32, n_layer=1, n_head=2, n_positions=32))
    assert not head.fuse_loss(gpt2)
    x = batch()
    assert gpt2(input_ids=x, labels=x).logits is not None


def test_eval_scores_the_same_with_and_without_the_plain_head_path(monkeypatch: pytest.MonkeyPatch,
                                                                 small_blocks: None) -> None:
    model = micro(seed=4).eval()
    docs = stdlib_docs(4, 150)
    args = dict(window=32, stride=16, batch_size=3, eos_id=EOS, pad_id=PAD,
                device=torch.device("cpu"))
    blocks = score_documents(model, docs, **args)
    monkeypatch.setattr(head, "PLAIN_HEAD_TYPES", frozenset())  # transformers' forward + logits_to_keep
    logits = score_documents(model, docs, **args)
    assert blocks.tokens.tolist() == logits.tokens.tolist()
    assert blocks.correct.tolist() == logits.correct.tolist()
    assert blocks.nll == pytest.approx(logits.nll, rel=1e-6)
