"""train.optimizer: Muon on hidden matrices + AdamW on the rest, as one resumable optimizer."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from transformers import get_cosine_with_min_lr_schedule_with_warmup

from codex_ml.models import Vocab, build_model
from codex_ml.params import ModelParams, load_params
from codex_ml.training.optim import Muon, MuonAdamW, muon_adamw, newton_schulz
from codex_ml.training.stage import run_training
from tests.trainkit import StopAt, folder_hashes

VOCAB = Vocab(size=384, pad_id=0, bos_id=1, eos_id=2)


def micro() -> torch.nn.Module:
    return build_model(ModelParams(name="llama-micro"), VOCAB, seq_len=32, seed=0)


def make_optimizer(model: torch.nn.Module, fused: bool = False) -> MuonAdamW:
    decay = {n for n, p in model.named_parameters() if p.ndim == 2}
    return muon_adamw(model.named_parameters(), decay, lr=0.003, muon_lr=0.03, weight_decay=0.1,
                      betas=(0.9, 0.95), fused=fused)


def step(model: torch.nn.Module, opt: MuonAdamW, sched: torch.optim.lr_scheduler.LRScheduler,
         seed: int) -> None:
    ids = torch.randint(3, VOCAB.size, (4, 32), generator=torch.Generator().manual_seed(seed))
    model(input_ids=ids, labels=ids).loss.backward()
    opt.step()
    sched.step()
    opt.zero_grad()


def test_hidden_matrices_go_to_muon_the_rest_to_adamw_and_both_follow_the_schedule() -> None:
    model = micro()
    opt = make_optimizer(model)
    names = {id(p): n for n, p in model.named_parameters()}
    muon = {names[id(p)] for g in opt.inner["muon"].param_groups for p in g["params"]}
    adamw = {names[id(p)] for g in opt.inner["adamw"].param_groups for p in g["params"]}
    assert muon and all(p.ndim == 2 for n, p in model.named_parameters() if n in muon)
    assert {n for n in muon if "embed" in n or "norm" in n} == set()
    assert "model.embed_tokens.weight" in adamw and any("norm" in n for n in adamw)
    assert muon | adamw == set(names.values()) and not muon & adamw  # every trainable weight, once
    # One scheduler drives both: the groups Trainer's scheduler sees are the inner optimizers' own.
    sched = get_cosine_with_min_lr_schedule_with_warmup(opt, 2, 10, min_lr_rate=0.1)
    for s in range(4):
        step(model, opt, sched, s)
    factor = opt.inner["adamw"].param_groups[0]["lr"] / 0.003
    assert 0.1 < factor < 1
    assert opt.inner["muon"].param_groups[0]["lr"] == pytest.approx(0.03 * factor)


def test_fused_adamw_is_the_same_update_and_unfused_keeps_the_old_state_dict() -> None:
    """fused=True (what CUDA runs get) is AdamW's fused kernel (torch has it on CPU too, so it runs
    here): the same weights to float rounding after the first step that moves them (the schedule's
    first lr is 0; later, Muon's Newton-Schulz amplifies rounding).
    fused=False must leave torch's default (None) in the param groups: an explicit False would
    change every CPU checkpoint's optimizer.pt."""
    plain, fused = micro(), micro()
    opts = make_optimizer(plain), make_optimizer(fused, fused=True)
    assert opts[0].inner["adamw"].param_groups[0]["fused"] is None
    assert opts[1].inner["adamw"].param_groups[0]["fused"] is True
    for model, opt in zip((plain, fused), opts, strict=True):
        sched = get_cosine_with_min_lr_schedule_with_warmup(opt, 2, 10, min_lr_rate=0.1)
        for s in range(2):
            step(model, opt, sched, s)
    for (name, a), (_, b) in zip(plain.named_parameters(), fused.named_parameters(), strict=True):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-7), name
    assert not torch.equal(plain.model.embed_tokens.weight, micro().model.embed_tokens.weight)  # it trained


def test_muon_is_torchs_rule_and_runs_newton_schulz_in_float32_off_cuda(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Our Muon only changes the Newton-Schulz precision off CUDA: forced to bfloat16 (what CUDA
    gets) it is torch.optim.Muon bit for bit, over several steps, both lr adjustments, nesterov or
    not, tall and wide matrices. In float32 it orthogonalises better than bfloat16."""
    shapes = [(48, 16), (16, 48), (24, 24)]

    def run(opt_class: type[torch.optim.Muon], steps: int, **kwargs: object) -> list[torch.Tensor]:
        params = [torch.nn.Parameter(torch.randn(s, generator=torch.Generator().manual_seed(i)))
                  for i, s in enumerate(shapes)]
        opt = opt_class(params, lr=0.02, **kwargs)
        for s in range(steps):
            for i, p in enumerate(params):
                p.grad = torch.randn(p.shape, generator=torch.Generator().manual_seed(100 * s + i))
            opt.step()
        assert len(opt.state_dict()["state"]) == len(shapes)
        return [p.detach() for p in params]

    assert Muon.ns_dtype(torch.zeros(1)) == torch.float32
    for kwargs in ({}, {"nesterov": False, "adjust_lr_fn": "match_rms_adamw", "weight_decay": 0.0}):
        reference = run(torch.optim.Muon, 3, **kwargs)
        fp32 = run(Muon, 3, **kwargs)
        with monkeypatch.context() as m:
            m.setattr(Muon, "ns_dtype", staticmethod(lambda p: torch.bfloat16))
            bf16 = run(Muon, 3, **kwargs)
        for ref, a, b in zip(reference, bf16, fp32, strict=True):
            assert torch.equal(ref, a)
            # float32 is another rounding of the same update: close to torch's, never equal to it
            assert not torch.equal(ref, b) and torch.allclose(ref, b, atol=3 * 0.02 * 0.05)
    g = torch.randn(64, 32, generator=torch.Generator().manual_seed(0))
    coefficients = (3.4445, -4.7750, 2.0315)
    x32, x16 = (newton_schulz(g, coefficients, 5, 1e-7, d).float() for d in (torch.float32, torch.bfloat16))
    assert x32.dtype == torch.float32 and x32.shape == g.shape
    s32, s16 = torch.linalg.svdvals(x32), torch.linalg.svdvals(x16)
    # The quintic's fixed point is a band around 1 (about 0.7-1.2), not 1, in either precision.
    for s in (s32, s16):
        assert s.min() > 0.5 and s.max() < 1.3
    assert (x32 - x16).abs().max() < 0.05  # bfloat16 rounding, not another update


def test_state_dict_round_trip_continues_exactly() -> None:
    whole, parts = micro(), micro()
    opt_w, opt_p = make_optimizer(whole), make_optimizer(parts)
    sched_w = get_cosine_with_min_lr_schedule_with_warmup(opt_w, 2, 8, min_lr_rate=0.1)
    sched_p = get_cosine_with_min_lr_schedule_with_warmup(opt_p, 2, 8, min_lr_rate=0.1)
    for s in range(3):
        step(whole, opt_w, sched_w, s)
        step(parts, opt_p, sched_p, s)
    saved_opt, saved_sched = opt_p.state_dict(), sched_p.state_dict()
    assert set(saved_opt) == {"adamw", "muon"} and saved_opt["muon"]["state"]  # momentum buffers kept
    # A fresh process: new model from the saved weights, new optimizer and scheduler from their states.
    resumed = micro()
    resumed.load_state_dict(parts.state_dict())
    opt_r = make_optimizer(resumed)
    sched_r = get_cosine_with_min_lr_schedule_with_warmup(opt_r, 2, 8, min_lr_rate=0.1)
    opt_r.load_state_dict(saved_opt)
    sched_r.load_state_dict(saved_sched)
    for s in range(3, 8):
        step(whole, opt_w, sched_w, s)
        step(resumed, opt_r, sched_r, s)
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_muon_learns_faster_than_adamw_and_adamw_still_resumes(workdir: Callable[..., Path]) -> None:
    steps = {"max_steps": 40, "eval_every": 40, "checkpoint_every": 20}
    muon = run_training(load_params(workdir({"train": steps}, name="muon") / "params.yaml"))
    adamw_whole = workdir({"train": {**steps, "optimizer": "adamw"}}, name="adamw")
    adamw = run_training(load_params(adamw_whole / "params.yaml"))
    # The reason it is the default: at the same steps and AdamW lr, a clearly lower val loss.
    assert muon["val/final_loss"] < adamw["val/final_loss"] - 0.1
    parts = workdir({"train": {**steps, "optimizer": "adamw"}}, name="adamw_parts")
    run_training(load_params(parts / "params.yaml"), callbacks=(StopAt(20),))
    assert run_training(load_params(parts / "params.yaml"))["train/resumed_from_step"] == 20
    assert folder_hashes(parts / "models/trained") == folder_hashes(adamw_whole / "models/trained")
