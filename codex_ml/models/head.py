"""The output layer and its loss, a block of rows at a time: no [tokens, vocab] logits in memory.

A causal LM's last step turns each hidden state into vocab-sized logits and reduces them to one
number per token (the NLL, and in eval the argmax). Done the plain way, the logits tensor (16 x 128
tokens x 8192 ids = 64 MiB in fp32) is written, read by log_softmax, read again by the loss, and
in backward a same-sized zero tensor and gradient are written and read too. On a 2-core CPU those
passes over main memory cost more than the output layer's matmuls.

Here the rows go through in blocks small enough to stay in cache (`block_rows`): for each block,
logits -> logsumexp and target logit -> softmax minus one-hot -> both gradient matmuls, all while the
block is hot. The gradients are computed in the forward pass (the loss is the graph's last node, so
backward only scales them by the incoming gradient), as Liger-Kernel's fused linear cross-entropy does
on GPUs. benchmarks/bench_head.py times its forward + backward against transformers' loss (docs/stages.md,
"train", has the figures); the results agree with it to float rounding (tests/train/test_head.py).

Only used where it is exact: a model type whose logits are `lm_head(decoder(x).last_hidden_state)`
with a plain bias-free Linear head and nothing after it (no softcapping or logit scale). Anything else
keeps transformers' own forward and loss.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers.modeling_outputs import CausalLMOutputWithPast

IGNORE = -100  # transformers' ignore_index for labels

# Model types whose CausalLM forward is exactly `logits = lm_head(model(...).last_hidden_state)`.
# Others may scale or softcap logits after the head, so they keep their own forward.
# Read from each class's forward (transformers 5.24); tests/test_pretrained.py (mistral, qwen2) and
# tests/train/test_head.py (llama, qwen3) check the loss and every gradient against transformers' on
# each. Phi (a head with a bias), Gemma (softcapping) and GPT-2/NeoX (other attribute names) are not on it.
PLAIN_HEAD_TYPES = frozenset({"llama", "mistral", "qwen2", "qwen3"})

# Bytes of fp32 logits per block: on CPU about the L2 cache of the cores the stage runs on; on a GPU
# the blocks only bound the memory held at once, so they are much larger.
CPU_BLOCK_BYTES = 4 << 20
GPU_BLOCK_BYTES = 1 << 30


def block_rows(vocab: int, device: torch.device) -> int:
    budget = GPU_BLOCK_BYTES if device.type == "cuda" else CPU_BLOCK_BYTES
    return max(1, budget // (4 * vocab))


def _unwrap(model: torch.nn.Module) -> Any:
    """The transformers model inside a PEFT wrapper (or the model itself)."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def plain_head(model: torch.nn.Module) -> tuple[torch.nn.Module, torch.nn.Linear] | None:
    """(decoder, head) when `model`'s logits are exactly `head(decoder(...).last_hidden_state)`; None
    for any other model. A PEFT wrapper is looked through; a LoRA-wrapped head is not plain."""
    base = _unwrap(model)
    config = getattr(base, "config", None)
    if getattr(config, "model_type", None) not in PLAIN_HEAD_TYPES:
        return None
    head = base.get_output_embeddings()
    decoder = getattr(base, "model", None)
    if type(head) is not torch.nn.Linear or head.bias is not None or decoder is None:
        return None
    return decoder, head


def _compute_dtype(t: torch.Tensor) -> torch.dtype:
    kind = t.device.type
    return torch.get_autocast_dtype(kind) if torch.is_autocast_enabled(kind) else t.dtype


def _blocks(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, divisor: torch.Tensor,
            dtype: torch.dtype, want_h: bool, want_w: bool
            ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """The loss, and (where wanted) its gradients for hidden and weight, a block of rows at a time."""
    n = hidden.shape[0]
    rows = block_rows(weight.shape[0], hidden.device)
    valid = targets != IGNORE
    safe = torch.where(valid, targets, 0)
    scale = valid.float() / divisor  # d loss / d (row's summed CE)
    w = weight.to(dtype)
    grad_h = torch.empty_like(hidden) if want_h else None
    grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if want_w else None
    total = torch.zeros((), dtype=torch.float64, device=hidden.device)
    for lo in range(0, n, rows):
        hi = min(lo + rows, n)
        h = hidden[lo:hi].to(dtype)
        logits = (h @ w.t()).float()
        picked = logits.gather(1, safe[lo:hi, None])[:, 0]
        if grad_h is None and grad_w is None:
            lse = torch.logsumexp(logits, dim=1)
            total += ((lse - picked) * valid[lo:hi]).sum(dtype=torch.float64)
            continue
        # One exp pass serves the loss and its gradient, in place of the logits: exp(logits - max)
        # sums to the logsumexp (as torch.logsumexp computes it) and, scaled by its row sum, is the
        # softmax. d loss / d logits = (softmax - one_hot(target)) * scale.
        top = logits.amax(dim=1, keepdim=True)
        e = logits.sub_(top).exp_()
        sums = e.sum(dim=1)
        total += ((top[:, 0] + sums.log() - picked) * valid[lo:hi]).sum(dtype=torch.float64)
        row_scale = scale[lo:hi]
        g = e.mul_((row_scale / sums)[:, None])
        g[torch.arange(hi - lo, device=g.device), safe[lo:hi]] -= row_scale
        g = g.to(dtype)
        if grad_h is not None:
            grad_h[lo:hi] = g @ w
        if grad_w is not None:
            if dtype == torch.float32:
                grad_w.addmm_(g.t(), h)
            else:
                grad_w += (g.t() @ h).float()
    return (total / divisor).float(), grad_h, grad_w


class _LinearCrossEntropy(torch.autograd.Function):
    """The loss as the graph's last node: backward only scales the gradients forward made."""

    @staticmethod
    def forward(ctx: Any, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
                divisor: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        loss, grad_h, grad_w = _blocks(hidden, weight, targets, divisor, dtype,
                                       ctx.needs_input_grad[0], ctx.needs_input_grad[1])
        ctx.save_for_backward(grad_h, grad_w)
        ctx.weight_dtype = weight.dtype
        return loss

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        grad_h, grad_w = ctx.saved_tensors
        dh = grad_h * grad_out.to(grad_h.dtype) if grad_h is not None else None
        dw = (grad_w * grad_out).to(ctx.weight_dtype) if grad_w is not None else None
        return dh, dw, None, None, None


def linear_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
                         num_items: int | torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy of `hidden @ weight.T` against `targets` (rows with -100 ignored), reduced as
    transformers' causal-LM loss does: summed over valid rows, divided by `num_items` (the batch's
    token count under gradient accumulation) or, without it, by the count of valid rows.

    hidden [N, d], weight [V, d], targets [N]. Under autocast the matmuls run in the autocast dtype
    and the softmax in fp32."""
    dtype = _compute_dtype(hidden)
    if num_items is None:
        divisor = (targets != IGNORE).sum().clamp(min=1).float()
    else:
        divisor = torch.as_tensor(num_items, device=hidden.device).float()
    with torch.autocast(hidden.device.type, enabled=False):
        if not (torch.is_grad_enabled() and (hidden.requires_grad or weight.requires_grad)):
            return _blocks(hidden, weight, targets, divisor, dtype, False, False)[0]
        out: torch.Tensor = _LinearCrossEntropy.apply(hidden, weight, targets, divisor, dtype)
        return out


def logsumexp_argmax_(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """logsumexp and argmax (the first maximum on ties) over the last dim, from one max pass, which
    also gives logsumexp's shift. Overwrites `logits`: read anything else from it first."""
    top, pred = logits.max(dim=-1)
    lse = top + logits.sub_(top.unsqueeze(-1)).exp_().sum(dim=-1).log_()
    return lse, pred


def linear_nll(hidden: torch.Tensor, weight: torch.Tensor,
               targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row NLL (nats, fp32) of `targets` under `hidden @ weight.T`, and whether the argmax (the
    first maximum on ties) was the target. No gradients; hidden [K, d], weight [V, d], targets [K]."""
    dtype = weight.dtype
    rows = block_rows(weight.shape[0], hidden.device)
    nll = torch.empty(hidden.shape[0], dtype=torch.float32, device=hidden.device)
    hit = torch.empty(hidden.shape[0], dtype=torch.bool, device=hidden.device)
    for lo in range(0, hidden.shape[0], rows):
        hi = min(lo + rows, hidden.shape[0])
        logits = (hidden[lo:hi].to(dtype) @ weight.t()).float()
        t = targets[lo:hi]
        picked = logits.gather(1, t[:, None])[:, 0]
        lse, pred = logsumexp_argmax_(logits)
        nll[lo:hi] = lse - picked
        hit[lo:hi] = pred == t
    return nll, hit


def fuse_loss(model: torch.nn.Module) -> bool:
    """Make `model(input_ids=..., labels=...)` compute its loss with `linear_cross_entropy` from the
    decoder's hidden states (no logits: the output's `logits` is None). Calls without labels are
    unchanged. The forward is replaced on this instance only (as an attribute), so DDP, torch.compile,
    PEFT and saving (state_dict) see the same module. Returns False, changing nothing, for a model
    without a plain head (see `plain_head`)."""
    parts = plain_head(model)
    if parts is None:
        return False
    decoder, head = parts
    base = _unwrap(model)
    original = base.forward

    def forward(input_ids: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                num_items_in_batch: int | torch.Tensor | None = None, **kwargs: Any) -> Any:
        if labels is None:
            return original(input_ids=input_ids, **kwargs)
        kwargs.pop("use_cache", None)
        hidden = decoder(input_ids=input_ids, use_cache=False, **kwargs).last_hidden_state
        loss = linear_cross_entropy(hidden[:, :-1].reshape(-1, hidden.shape[-1]), head.weight,
                                    labels[:, 1:].reshape(-1), num_items_in_batch)
        return CausalLMOutputWithPast(loss=loss)

    forward.__doc__ = f"{type(base).__name__}.forward with its loss fused into the head (models/head.py)"
    base.forward = forward  # an instance attribute: nn.Module.__call__ finds it before the class's
    return True
