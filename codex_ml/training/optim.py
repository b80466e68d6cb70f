"""Muon for the hidden weight matrices, AdamW for the rest, behind one torch Optimizer.

Muon (torch.optim.Muon's rule: momentum, then Newton-Schulz orthogonalisation of each 2-D update) trains the
transformer's hidden matrices far faster per step than AdamW at these sizes: on the stdlib, llama-tiny
reached a lower val bits/byte in 200 steps than AdamW did in 300 (docs/speedrun.md). Muon is only
defined for matrices that map hidden states to hidden states, so the token embedding (tied to the
output layer), norms and biases stay on AdamW, as in the Muon reference recipe.

Trainer, accelerate and the LR scheduler expect one Optimizer. `MuonAdamW` is one: its param groups
are the two inner optimizers' groups (the same dicts), so the scheduler's lr updates reach both;
its state_dict holds both inner state_dicts, so checkpoints resume exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

# Parameter names that stay on AdamW even when 2-D: the vocabulary-sized input/output tables.
EMBEDDING_NAMES = ("embed_tokens", "lm_head", "wte", "embed_out")


def closure_loss(closure: Callable[[], float] | None) -> float | None:
    """Optimizer.step's optional closure: re-evaluate the loss with gradients on."""
    if closure is None:
        return None
    with torch.enable_grad():
        return closure()


def newton_schulz(update: torch.Tensor, coefficients: tuple[float, float, float], steps: int, eps: float,
                  dtype: torch.dtype) -> torch.Tensor:
    """torch.optim.Muon's quintic Newton-Schulz orthogonalisation, computed in `dtype`."""
    a, b, c = coefficients
    x = update.to(dtype)
    tall = x.size(0) > x.size(1)
    if tall:
        x = x.T
    x = x / x.norm().clamp(min=eps)
    for _ in range(steps):
        gram = x @ x.T
        x = torch.addmm(x, torch.addmm(gram, gram, gram, beta=b, alpha=c), x, beta=a)
    return x.T if tall else x


class Muon(torch.optim.Muon):
    """torch.optim.Muon with its Newton-Schulz iteration in float32 off CUDA.

    torch runs the iteration in bfloat16 everywhere. On a CPU without native bfloat16 matmul (AVX2,
    and AVX-512 without BF16/AMX) that is emulated and slow (docs/speedrun.md has the measurement),
    so off CUDA the iteration runs in float32. On CUDA the
    iteration stays in bfloat16 as in torch, and the result is the same, bit for bit
    (tests/train/test_optim.py); the update rule, hyperparameters and state are torch's.
    """

    @staticmethod
    def ns_dtype(param: torch.Tensor) -> torch.dtype:
        return torch.bfloat16 if param.is_cuda else torch.float32

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        loss = closure_loss(closure)
        for group in self.param_groups:
            lr, momentum, decay = float(group["lr"]), group["momentum"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(grad, memory_format=torch.preserve_format)
                buf = state["momentum_buffer"]
                buf.lerp_(grad, 1 - momentum)
                update = grad.lerp(buf, momentum) if group["nesterov"] else buf
                update = newton_schulz(update, group["ns_coefficients"], group["ns_steps"], group["eps"],
                                       self.ns_dtype(p))
                p.mul_(1 - lr * decay)
                p.add_(update, alpha=-lr * self.lr_scale(group["adjust_lr_fn"], p.shape))
        return loss

    @staticmethod
    def lr_scale(adjust_lr_fn: str | None, shape: torch.Size) -> float:
        """torch's per-shape lr adjustment: Keller Jordan's ("original") or Moonshot's."""
        rows, cols = shape[:2]
        if adjust_lr_fn == "match_rms_adamw":
            return 0.2 * math.sqrt(max(rows, cols))
        return math.sqrt(max(1, rows / cols))


def is_muon_param(name: str, param: torch.Tensor) -> bool:
    """A hidden weight matrix: 2-D and not a token embedding / output layer."""
    return param.ndim == 2 and not any(part in name for part in EMBEDDING_NAMES)


class MuonAdamW(torch.optim.Optimizer):
    def __init__(self, muon_groups: list[dict[str, Any]], adamw_groups: list[dict[str, Any]], *,
                 muon: dict[str, Any], adamw: dict[str, Any]):
        # AdamW first: Trainer logs the first group's lr as train/learning_rate, which is then train.lr
        # on its schedule, as with plain AdamW. A side with no parameters (LoRA trains only adapter
        # matrices, all on Muon) has no optimizer.
        self.inner: dict[str, torch.optim.Optimizer] = {}
        if adamw_groups:
            self.inner["adamw"] = torch.optim.AdamW(adamw_groups, **adamw)
        if muon_groups:
            self.inner["muon"] = Muon(muon_groups, **muon)
        if not self.inner:
            raise ValueError("no trainable parameters")
        super().__init__(self._groups(), {})

    def _groups(self) -> list[dict[str, Any]]:
        # The very dicts of the inner optimizers: add_param_group appends the dict it is given, and
        # load_state_dict replaces them, hence relinking after it.
        return [g for opt in self.inner.values() for g in opt.param_groups]

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        loss = closure_loss(closure)
        for opt in self.inner.values():
            opt.step()
        return loss

    def state_dict(self) -> dict[str, Any]:
        return {name: opt.state_dict() for name, opt in self.inner.items()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if set(state_dict) != set(self.inner):
            raise ValueError(f"optimizer state has parts {sorted(state_dict)}, expected "
                             f"{sorted(self.inner)}: it was written by another train.optimizer")
        for name, opt in self.inner.items():
            opt.load_state_dict(state_dict[name])
        self.param_groups = self._groups()


def muon_adamw(named: Iterable[tuple[str, nn.Parameter]], decay_names: set[str], *, lr: float,
               muon_lr: float, weight_decay: float, betas: tuple[float, float],
               momentum: float = 0.95, fused: bool = False) -> MuonAdamW:
    """Split trainable parameters: hidden matrices to Muon (lr `muon_lr`, decoupled weight decay);
    the rest to AdamW (lr `lr`, weight decay only on `decay_names`, Trainer's rule: no norms, biases).
    `fused`: AdamW's fused CUDA kernel (one launch for all its tensors; torch's Muon has none)."""
    muon_params, decay, no_decay = [], [], []
    for name, param in named:
        if not param.requires_grad:
            continue
        if is_muon_param(name, param):
            muon_params.append(param)
        elif name in decay_names:
            decay.append(param)
        else:
            no_decay.append(param)
    adamw_groups = [g for g in ({"params": decay, "weight_decay": weight_decay},
                                {"params": no_decay, "weight_decay": 0.0}) if g["params"]]
    return MuonAdamW([{"params": muon_params, "weight_decay": weight_decay}], adamw_groups,
                     muon={"lr": muon_lr, "momentum": momentum, "nesterov": True},
                     # "fused" only when asked: an explicit False would change the state_dict's
                     # param groups, so CPU checkpoints would differ from those made before it
                     adamw={"lr": lr, "betas": betas, "eps": 1e-8, **({"fused": True} if fused else {})})


def plain_optimizer(model: nn.Module, name: str, *, lr: float, muon_lr: float, weight_decay: float,
                    betas: tuple[float, float], fused: bool = False) -> torch.optim.Optimizer:
    """`train.optimizer` for a hand-written loop (the benchmarks): weight decay on every matrix and
    none on norms, which is Trainer's rule for these Llama models. `fused`: AdamW's fused CUDA kernel."""
    decay = {n for n, p in model.named_parameters() if p.ndim >= 2}
    if name == "muon":
        return muon_adamw(model.named_parameters(), decay, lr=lr, muon_lr=muon_lr,
                          weight_decay=weight_decay, betas=betas, fused=fused)
    named = list(model.named_parameters())
    return torch.optim.AdamW([{"params": [p for n, p in named if n in decay], "weight_decay": weight_decay},
                              {"params": [p for n, p in named if n not in decay], "weight_decay": 0.0}],
                             lr=lr, betas=betas, **({"fused": True} if fused else {}))
