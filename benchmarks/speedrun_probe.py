"""Rank training settings for docs/speedrun.md: train a Qwen3/Llama shape for N steps, print val bits/byte.

A plain loop over the train stage's own pieces (TrainWindows, the registry's common settings, the
stage's Muon/AdamW split and warmup + cosine schedule), then the eval stage's own scorer
(`score_documents`: window = seq_len, stride = half) over the whole val split of an existing
`data/tokens`. Settings that are not params yet (any width, depth, head size, architecture) can be
tried without touching the registry, and so can schedules (warmup-stable-decay), a weight average
(`--ema`: scored beside the final weights) and a longer window for the last part of training
(`--late-seq-len`). The value-embedding, U-net and soft-cap probes of docs/speedrun.md ran
on a model class kept only in commit f471c13 (`--arch codex`). Numbers land in one JSON line on
stdout and in --log.

    python benchmarks/speedrun_probe.py --tokens data/tokens --hidden 128 --head-dim 32 --steps 1000
    python benchmarks/speedrun_probe.py --threads 1 ... &  python benchmarks/speedrun_probe.py --threads 1 ...

Two probes with one thread each side by side use a 2-core machine fully; compare them at equal steps
or, with the printed steady tokens/s, at equal time. The pipeline's own numbers come from `make repro`.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from transformers import (
    AutoModelForCausalLM,
    LlamaConfig,
    Qwen3Config,
    get_cosine_with_min_lr_schedule_with_warmup,
    get_wsd_schedule,
)

from codex_ml.eval.inputs import load_token_split
from codex_ml.eval.score import score_documents
from codex_ml.models.registry import COMMON
from codex_ml.training.inputs import load_token_data
from codex_ml.training.optim import plain_optimizer
from codex_ml.training.windows import TrainWindows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", type=Path, default=Path("data/tokens"))
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--head-dim", type=int, default=32)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--optimizer", choices=["muon", "adamw"], default="muon")
    ap.add_argument("--lr", type=float, default=0.024, help="AdamW's lr (embeddings and norms with muon)")
    ap.add_argument("--muon-lr", type=float, default=0.03)
    ap.add_argument("--min-lr-ratio", type=float, default=0.1)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--schedule", choices=["cosine", "wsd"], default="cosine",
                    help="warmup + cosine to min-lr-ratio, or warmup-stable-decay (transformers' "
                         "get_wsd_schedule) with its decay over the last --decay-frac of the steps")
    ap.add_argument("--decay-frac", type=float, default=0.4)
    ap.add_argument("--decay-type", default="linear", help="wsd's decay shape: linear, cosine, 1-sqrt")
    ap.add_argument("--late-seq-len", type=int, default=0,
                    help="for the last --late-frac of the steps, windows of this many tokens (the same "
                         "tokens per step: fewer windows); eval then scores with this window")
    ap.add_argument("--late-frac", type=float, default=0.2)
    ap.add_argument("--mid-seq-len", type=int, default=0,
                    help="a third phase: windows of this many tokens for the --mid-frac of the steps "
                         "just before the late ones (the same tokens per step)")
    ap.add_argument("--mid-frac", type=float, default=0.2)
    ap.add_argument("--beta1", type=float, default=0.9, help="AdamW's beta1")
    ap.add_argument("--momentum-warmup", type=int, default=0,
                    help="Muon's momentum rises linearly from 0.85 to 0.95 over this many steps")
    ap.add_argument("--ema", type=lambda v: [float(d) for d in v.split(",")], default=[],
                    help="also score exponential moving averages of the weights with these decays "
                         "(comma-separated, e.g. 0.99,0.995)")
    ap.add_argument("--untied", action="store_true", help="an output layer of its own (no tied embedding)")
    ap.add_argument("--act", default=COMMON["hidden_act"], help="the MLP's gate activation, e.g. relu2")
    ap.add_argument("--arch", choices=["qwen3", "llama"], default="qwen3",
                    help="transformers' class: qwen3 (the default model's: Llama plus RMSNorm on each "
                         "head's queries and keys, QK-norm) or llama")
    ap.add_argument("--rope-theta", type=float, default=COMMON["rope_theta"],
                    help="RoPE's base: each head's slowest rotation (the default model's: 10,000)")
    ap.add_argument("--zero-init", action="store_true",
                    help="start o_proj and down_proj at zero (each block begins as the identity)")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--no-eval", action="store_true", help="throughput only")
    ap.add_argument("--seed", type=int, default=1337)
    ap.add_argument("--tag", default="")
    ap.add_argument("--log", type=Path, default=None, help="append the JSON line here too")
    a = ap.parse_args()

    torch.use_deterministic_algorithms(True)
    if a.threads:
        torch.set_num_threads(a.threads)
    data = load_token_data(a.tokens)
    meta = data.meta
    heads = max(1, a.hidden // a.head_dim)
    config_class = {"llama": LlamaConfig, "qwen3": Qwen3Config}[a.arch]
    config = config_class(**{**COMMON, "use_cache": False, "hidden_act": a.act,
                            "tie_word_embeddings": not a.untied,
                            "rope_theta": a.rope_theta}, vocab_size=meta.vocab_size,
                         hidden_size=a.hidden, intermediate_size=(a.hidden * 8 // 3 + 63) // 64 * 64,
                         num_hidden_layers=a.layers,
                         num_attention_heads=heads, num_key_value_heads=heads, head_dim=a.head_dim,
                         max_position_embeddings=a.seq_len, pad_token_id=meta.pad_id,
                         bos_token_id=meta.bos_id, eos_token_id=meta.eos_id)
    torch.manual_seed(a.seed)
    model = AutoModelForCausalLM.from_config(config)
    if a.zero_init:
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name.endswith(("o_proj.weight", "down_proj.weight")):
                    p.zero_()
    opt = plain_optimizer(model, a.optimizer, lr=a.lr, muon_lr=a.muon_lr, weight_decay=a.weight_decay,
                          betas=(a.beta1, 0.95))
    if a.schedule == "wsd":
        sched = get_wsd_schedule(opt, a.warmup, round(a.steps * a.decay_frac), a.steps,
                                 decay_type=a.decay_type, min_lr_ratio=a.min_lr_ratio)
    else:
        sched = get_cosine_with_min_lr_schedule_with_warmup(opt, a.warmup, a.steps,
                                                            min_lr_rate=a.min_lr_ratio)
    emas = {decay: [p.detach().clone() for p in model.parameters()] for decay in a.ema}
    forward = torch.compile(model) if a.compile else model

    def phase(first_step: int, seq_len: int) -> tuple[int, TrainWindows, int]:
        """Windows of `seq_len` from `first_step` on: the same tokens per step, so fewer if longer."""
        batch = a.batch_size * a.seq_len // seq_len
        return first_step, TrainWindows(data.train, seq_len, a.steps * batch, batch, a.seed), batch

    late_start = a.steps - round(a.steps * a.late_frac) if a.late_seq_len else a.steps
    phases = [phase(0, a.seq_len)]
    if a.mid_seq_len:
        phases.append(phase(late_start - round(a.steps * a.mid_frac), a.mid_seq_len))
    if a.late_seq_len:
        phases.append(phase(late_start, a.late_seq_len))
    eval_window = phases[-1][1].seq_len  # the last phase's windows: the model's context

    losses: list[float] = []
    t0 = time.perf_counter()
    t_steady = t0
    for step in range(a.steps):
        _, source, batch = [ph for ph in phases if step >= ph[0]][-1]
        if a.momentum_warmup:
            for group in opt.param_groups:
                if "momentum" in group:  # Muon's groups (AdamW's have betas)
                    group["momentum"] = 0.85 + 0.10 * min(1.0, step / a.momentum_warmup)
        first = step * batch
        x = torch.stack([source[i]["input_ids"] for i in range(first, first + batch)])
        loss = forward(input_ids=x, labels=x).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        with torch.no_grad():
            for decay, ema in emas.items():
                torch._foreach_lerp_(ema, [p.detach() for p in model.parameters()], 1 - decay)
        losses.append(loss.item())
        if step == 4:  # compilation and warm-up are over
            t_steady = time.perf_counter()
        if step % 100 == 0 or step == a.steps - 1:
            print(f"step {step}: train loss {np.mean(losses[-20:]):.4f}, {time.perf_counter() - t0:.0f} s",
                  flush=True)
    train_s = time.perf_counter() - t0
    steady = (a.steps - 5) * a.batch_size * a.seq_len / (time.perf_counter() - t_steady)
    result = {"tag": a.tag, "train_s": round(train_s, 1), "steady_tokens_per_s": round(steady),
              "parameters": sum(p.numel() for p in model.parameters()),
              "final_train_loss": float(np.mean(losses[-20:])),
              "args": {k: str(v) for k, v in vars(a).items()}}
    if not a.no_eval:
        model.eval()
        docs = load_token_split(a.tokens, "val")
        nbytes = sum(d.nbytes for d in docs)

        def val_bits_per_byte() -> float:
            scores = score_documents(model, [d.ids for d in docs], window=eval_window,
                                     stride=eval_window // 2, batch_size=16, eos_id=meta.eos_id,
                                     pad_id=meta.pad_id, device=torch.device("cpu"))
            return float(scores.nll.sum() / math.log(2) / nbytes)

        result["val_bits_per_byte"] = val_bits_per_byte()
        for decay, ema in emas.items():
            with torch.no_grad():
                for p, e in zip(model.parameters(), ema, strict=True):
                    p.copy_(e)
            result[f"ema{decay}_val_bits_per_byte"] = val_bits_per_byte()
    line = json.dumps(result)
    print(line, flush=True)
    if a.log:
        with a.log.open("a", encoding="utf-8") as f:
            f.write(line + "\n")


if __name__ == "__main__":
    main()
