"""LoRA fine-tuning throughput: the train stage against a plain peft + torch loop, on one fixture.

A "pretrained" folder is built here (a random-init model of a real architecture at a small size, with
a byte-level BPE tokenizer trained on the stdlib and saved beside it), the real tokenize stage encodes
the stdlib with that tokenizer, and then, alternating in this one process:
- the train stage (run_training: Trainer, LoRA through peft, the fused CPU loss where it is exact,
  dvclive logging every step, checkpoint at the end), and
- the loop a person would write: from_pretrained, get_peft_model with the same LoraConfig, AdamW on
  the adapters, cosine schedule, clipping, the same windows; nothing else.
Printed: tokens/s of each and the ratio stage / plain (the goal is >= 1.0). Measured on the 2-core
machine, with another training run on the other core (so one thread each): plain 1,715 tokens/s,
stage 1,779 tokens/s, 1.037x (llama, hidden 256 x 4 layers, batch 16 x 128, median of 3).

    python benchmarks/bench_finetune.py                        # llama, hidden 256 x 4 layers, LoRA r16
    python benchmarks/bench_finetune.py --family gpt2 --steps 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Any

import kernels_first  # noqa: F401  (before torch: the CPU kernels the stage runs on)
import torch
from bench_train import stage_tokens_per_s
from transformers import get_cosine_with_min_lr_schedule_with_warmup

from codex_ml.base_model import base_of
from codex_ml.models.lora import apply_lora
from codex_ml.params import parse_params
from codex_ml.shards import write_prepared
from codex_ml.training.inputs import load_token_data
from codex_ml.training.stage import configure_torch
from codex_ml.training.windows import TrainWindows


def make_base(root: Path, family: str, texts: list[str], hidden: int, layers: int, vocab: int) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import AutoModelForCausalLM, GPT2Config, LlamaConfig, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=vocab, special_tokens=["<|endoftext|>"], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>")
    ids = dict(vocab_size=len(fast), bos_token_id=fast.bos_token_id, eos_token_id=fast.eos_token_id)
    config: Any
    if family == "gpt2":
        config = GPT2Config(n_embd=hidden, n_layer=layers, n_head=hidden // 64, n_positions=1024, **ids)
    else:
        config = LlamaConfig(hidden_size=hidden, intermediate_size=hidden * 8 // 3 // 64 * 64 + 64,
                             num_hidden_layers=layers, num_attention_heads=hidden // 64,
                             num_key_value_heads=hidden // 64, max_position_embeddings=1024,
                             tie_word_embeddings=True, **ids)
    torch.manual_seed(0)
    folder = root / "base"
    AutoModelForCausalLM.from_config(config).save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder


def tokenize(root: Path, raw: dict[str, Any], texts: list[str]) -> None:
    """The real tokenize stage with the base's own tokenizer (train and val from the stdlib)."""
    from codex_ml.tokenization.stage import tokenize as run_tokenize

    prepared = root / "data/prepared"
    splits = {"train": texts[1:], "val": texts[:1], "test": texts[:1]}
    for split, docs in splits.items():
        write_prepared(prepared, split, ({"path": f"{split}{i}.py", "text": text}
                                         for i, text in enumerate(docs)))
    params = parse_params(raw)
    run_tokenize(params.tokenizer, prepared, root / "models/tokenizer", root / "data/tokens",
                 root / "metrics/tokenize.json", base=base_of(params.model))


def plain_tokens_per_s(root: Path, raw: dict[str, Any], warmup: int, steps: int) -> float:
    """The reference: peft + torch by hand, the same model, adapters, optimizer and windows."""
    from transformers import AutoModelForCausalLM

    p = parse_params(raw)
    t = p.train
    configure_torch(t.threads)
    base = base_of(p.model)
    assert base is not None
    model = apply_lora(AutoModelForCausalLM.from_pretrained(base.folder, dtype=torch.float32), p.model.lora)
    model.train()
    trainable = [q for q in model.parameters() if q.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=t.lr, betas=(t.beta1, t.beta2), weight_decay=t.weight_decay)
    sched = get_cosine_with_min_lr_schedule_with_warmup(opt, t.warmup_steps, t.max_steps,
                                                         min_lr_rate=t.min_lr_ratio)
    tokens = load_token_data(root / "data/tokens").train
    windows = TrainWindows(tokens, t.seq_len, t.max_steps * t.batch_size, t.batch_size, t.seed)
    t0 = 0.0
    for step in range(warmup + steps):
        if step == warmup:
            t0 = time.perf_counter()
        first = step * t.batch_size
        x = torch.stack([windows[i]["input_ids"] for i in range(first, first + t.batch_size)])
        model(input_ids=x, labels=x).loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, t.grad_clip)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
    return steps * t.batch_size * t.seq_len / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--family", default="llama", choices=["llama", "gpt2"])
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--steps", type=int, default=8, help="timed steps per measurement")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    ap.add_argument("--repeats", type=int, default=2, help="alternating measurements of each; median")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    args = ap.parse_args()

    stdlib = Path(sysconfig.get_paths()["stdlib"])
    texts = [p.read_text(encoding="utf-8") for p in sorted(stdlib.glob("*.py"))[:120]]
    total = args.warmup + args.steps
    results: dict[str, list[float]] = {"plain peft + torch loop": [], "train stage": []}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.chdir(root)  # dvclive looks for a DVC repository from the working directory
        base = make_base(root, args.family, texts, args.hidden, args.layers, args.vocab)
        raw = {"model": {"pretrained": str(base), "lora": {"enabled": True, "r": 16, "alpha": 32,
                                                            "target_modules": "all-linear"}},
               "tokenizer": {"backend": "pretrained"},
               "train": {"optimizer": "adamw", "lr": 2e-4, "weight_decay": 0.0, "batch_size": args.batch_size,
                         "seq_len": args.seq_len, "final_seq_len": 0, "max_steps": total, "warmup_steps": 1,
                         "eval_every": total,
                         "checkpoint_every": total, "eval_batches": 1, "threads": args.threads}}
        tokenize(root, raw, texts)
        for _ in range(args.repeats):
            results["plain peft + torch loop"].append(plain_tokens_per_s(root, raw, args.warmup, args.steps))
            results["train stage"].append(stage_tokens_per_s(root, raw, args.warmup, args.steps))
    plain = statistics.median(results["plain peft + torch loop"])
    print(f"LoRA r16 all-linear on a {args.family} base (hidden {args.hidden} x {args.layers} layers, "
          f"vocab {args.vocab}), batch {args.batch_size} x {args.seq_len}, {torch.get_num_threads()} "
          f"threads, "
          f"{args.steps} timed steps after {args.warmup}, median of {args.repeats}")
    print(f"{'':26} {'tokens/s':>10} {'vs plain':>10}")
    for name, values in results.items():
        tps = statistics.median(values)
        print(f"{name:26} {tps:10.0f} {tps / plain:9.3f}x")


if __name__ == "__main__":
    main()
