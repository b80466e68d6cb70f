"""The model table's numbers: each registry model, and `model=pretrained` on a GPT-2-small-shaped base,
trained by the train stage for a few steps on this machine's CPUs.

Each model runs in a fresh process (its peak RSS is its own: Python, torch, the model, the optimizer
and the activations of one step), with the params `dvc exp run -S model=...` composes from conf/ (the
default train profile: 16 x 128-token windows a step, Muon for registry models; the pretrained
profile: LoRA r 16 on every linear layer, AdamW), on the stdlib tokenized as the pipeline does
(hf-bpe 4,096 for registry models; the base's own tokenizer for the pretrained one). Printed per
model: parameters (trainable ones for LoRA), context, the stage's tokens/s over the timed steps, and
the process's peak RSS.

The pretrained base is GPT-2 small's shape (transformers' GPT2Config defaults: 12 layers, hidden 768,
50,257 embeddings, 1,024 positions), randomly initialised and saved with save_pretrained with a
byte-level BPE tokenizer trained here: nothing is downloaded, and speed and memory depend on the
shape, not on the weights' values.

    python benchmarks/bench_models.py                      # every model, 1 + 3 steps each
    python benchmarks/bench_models.py --models qwen3-mini llama-mini --steps 5 --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PRETRAINED = "pretrained (GPT-2 small shape)"
# The stdlib's own top-level modules: ~4 MB of real code, enough windows for every model's steps.
CORPUS_GLOB = "*.py"


def compose(overrides: list[str], out: Path) -> dict[str, Any]:
    """conf/ composed as `dvc exp run -S ...` composes it (DVC's own function)."""
    import yaml
    from dvc.utils.hydra import compose_and_dump

    compose_and_dump(out, str(ROOT / "conf"), None, "config", str(ROOT), overrides)
    return yaml.safe_load(out.read_text())


def make_base(folder: Path, texts: list[str]) -> None:
    """A GPT-2-small-shaped model folder with its own byte-level BPE tokenizer (see the docstring)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=4096, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer)
    end = "<|endoftext|>"
    PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=end, eos_token=end,
                            unk_token=end).save_pretrained(folder)
    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config(bos_token_id=0, eos_token_id=0)).save_pretrained(folder)


def setup(work: Path) -> None:
    """data/prepared from the stdlib (the prepare stage, all in train but a few val documents), the
    registry models' tokenizer and tokens, and the pretrained base with its own tokens."""
    from codex_ml.base_model import resolve
    from codex_ml.data.stage import prepare
    from codex_ml.params import parse_params
    from codex_ml.tokenization.stage import tokenize

    raw = compose([f"data.path={sysconfig.get_paths()['stdlib']}", "data=dir",
                   f"data.include=[{CORPUS_GLOB}]", "data.val_fraction=0.05", "data.test_fraction=0.05"],
                  work / "params.yaml")
    params = parse_params(raw)
    prepare(params.data, work / "data/prepared", work / "metrics/prepare.json")
    tokenize(params.tokenizer, work / "data/prepared", work / "scratch/tokenizer", work / "scratch/tokens",
             work / "metrics/tokenize-scratch.json", data=params.data)
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    make_base(work / "base", [p.read_text(encoding="utf-8", errors="replace")
                              for p in sorted(stdlib.glob(CORPUS_GLOB))])
    tokenize(params.tokenizer, work / "data/prepared", work / "pretrained/tokenizer",
             work / "pretrained/tokens", work / "metrics/tokenize-pretrained.json",
             base=resolve(str(work / "base")), data=params.data)


def measure(work: Path, model: str, warmup: int, steps: int, threads: int) -> dict[str, Any]:
    """One model's row (run in its own process: see the docstring)."""
    import sys as _sys

    _sys.path.insert(0, str(Path(__file__).parent))
    from bench_train import StepClock

    from codex_ml.params import parse_params
    from codex_ml.training.stage import TrainPaths, run_training

    total = warmup + steps
    if model == PRETRAINED:
        overrides, kind = ["model=pretrained", f"model.pretrained={work / 'base'}"], "pretrained"
    else:
        overrides, kind = [f"model.name={model}"], "scratch"
    raw = compose(overrides, work / f"params-{os.getpid()}.yaml")
    context = raw["train"]["final_seq_len"] or raw["train"]["seq_len"]
    # The first phase's windows throughout (final_seq_len 0), no eval or checkpoint inside the timed steps.
    raw["train"].update(max_steps=total, final_seq_len=0, warmup_steps=1, eval_every=total,
                        checkpoint_every=total, eval_batches=1, threads=threads)
    params = parse_params(raw)
    clock = StepClock(warmup, total)
    out = work / f"out-{os.getpid()}"
    paths = TrainPaths(tokens=work / kind / "tokens", tokenizer=work / kind / "tokenizer",
                       model=out / "model", checkpoints=out / "checkpoints", metrics=out / "metrics")
    summary = run_training(params, paths, callbacks=(clock,))
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    if model == PRETRAINED:
        context = json.loads((work / "base/config.json").read_text())["n_positions"]
    t = params.train
    return {"model": model, "parameters": summary["model/parameters"],
            "trainable": summary["model/trainable_parameters"], "context": context,
            "tokens_per_s": steps * t.batch_size * t.grad_accum * t.seq_len / clock.seconds,
            "peak_rss_mb": peak_rss, "batch": f"{t.batch_size} x {t.seq_len}", "optimizer": t.optimizer}


def main() -> None:
    from codex_ml.models.registry import MODELS

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="*", default=[*MODELS, PRETRAINED])
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    ap.add_argument("--steps", type=int, default=3, help="timed steps per model")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (train.threads)")
    ap.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure this model in this process
    ap.add_argument("--work", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        os.chdir(args.work)  # dvclive looks for a DVC repository from the working directory
        print(json.dumps(measure(Path(args.work), args.one, args.warmup, args.steps, args.threads)))
        return
    with tempfile.TemporaryDirectory(prefix="bench-models-") as tmp:
        work = Path(tmp)
        started = time.perf_counter()
        setup(work)
        print(f"setup (prepare + tokenize, twice): {time.perf_counter() - started:.0f} s", file=sys.stderr)
        rows = []
        for model in args.models:
            started = time.perf_counter()
            proc = subprocess.run([sys.executable, __file__, "--one", model, "--work", str(work),
                                   "--warmup", str(args.warmup), "--steps", str(args.steps),
                                   "--threads", str(args.threads)], capture_output=True, text=True)
            if proc.returncode:
                raise SystemExit(f"bench_models: {model} failed\n{proc.stderr[-4000:]}")
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            print(f"{model}: {time.perf_counter() - started:.0f} s", file=sys.stderr)
    print(f"{args.threads} torch threads, {args.steps} timed steps after {args.warmup}, "
          f"{os.cpu_count()} CPUs visible")
    print("| model | parameters | trainable | context | batch | optimizer | tokens/s | peak RSS |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['parameters'] / 1e6:.2f}M | {r['trainable'] / 1e6:.2f}M | "
              f"{r['context']} | "
              f"{r['batch']} | {r['optimizer']} | {r['tokens_per_s']:,.0f} | {r['peak_rss_mb']:,.0f} MiB |")


if __name__ == "__main__":
    main()
