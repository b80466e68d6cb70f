"""The model table's numbers: each registry model, and `model=pretrained` on a GPT-2-small-shaped base,
trained by the train stage for a few steps on this machine's CPUs.

Each model runs in a fresh interpreter, and its peak RSS is that process's own high-water mark
(`VmHWM` in /proc/self/status: Python, torch, the model, the optimizer and the activations of one
step). Not `getrusage`'s `ru_maxrss`: a child started by a process that has already grown (this one
prepares and tokenizes the corpus) reports its parent's peak until it outgrows it. The params are
those `dvc exp run -S model=...` composes from conf/ (the default train profile: 16 x 128-token
windows a step, Muon for registry models; the pretrained profile: LoRA r 16 on every linear layer,
AdamW), on the stdlib tokenized as the pipeline does (hf-bpe 4,096 for registry models; the base's own
tokenizer for the pretrained one). Per model: parameters (trainable ones for LoRA), context, the
stage's tokens/s over the timed steps, its ratio to the default model's in the same run (the figure to
compare across machines), and the peak RSS. `--repeats N` measures the models N times in turn and
keeps each one's best tokens/s: the machines are shared, and the slowest passes are the loaded ones.

The pretrained base is GPT-2 small's shape (transformers' GPT2Config defaults: 12 layers, hidden 768,
50,257 embeddings, 1,024 positions), randomly initialised and saved with save_pretrained with a
byte-level BPE tokenizer trained here: nothing is downloaded, and speed and memory depend on the
shape, not on the weights' values.

    python benchmarks/bench_models.py --save               # every model; writes benchmarks/results/
    python benchmarks/bench_models.py --markdown           # the saved table (README.md, docs/models.md)
    python benchmarks/bench_models.py --models qwen3-mini llama-mini --steps 5 --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import kernels_first  # noqa: F401  (before torch: the CPU kernels the stage runs on)
import tables  # benchmarks/tables.py, beside this file

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


def peak_rss_mib() -> float:
    """This process's peak resident set (its memory's high-water mark), MiB (see the docstring)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # kB
    raise SystemExit("bench_models: /proc/self/status has no VmHWM (it measures memory on Linux)")


def options() -> dict[str, str]:
    """Registry name -> the conf/model option that picks it (`-S model=<option>`)."""
    import yaml

    found = {}
    for path in sorted((ROOT / "conf/model").glob("*.yaml")):
        conf = yaml.safe_load(path.read_text()) or {}
        name = conf.get("name") or (conf.get("model") or {}).get("name")
        if "pretrained" in (conf.get("model") or {}):
            found[PRETRAINED] = path.stem
        elif name:
            found[name] = path.stem
    return found


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
    if model == PRETRAINED:
        context = json.loads((work / "base/config.json").read_text())["n_positions"]
    t = params.train
    return {"model": model, "parameters": summary["model/parameters"],
            "trainable": summary["model/trainable_parameters"], "context": context,
            "tokens_per_s": steps * t.batch_size * t.grad_accum * t.seq_len / clock.seconds,
            "peak_rss_mib": peak_rss_mib(), "batch": f"{t.batch_size} x {t.seq_len}",
            "optimizer": t.optimizer}


def markdown(result: dict[str, Any]) -> str:
    """The table of a saved run, and the line naming its command and machine."""
    rows, s = result["rows"], result["settings"]
    base = next(r["tokens_per_s"] for r in rows if r["model"] == s["default_model"])
    names = options()  # conf/'s option names as they are now: not a measurement
    cells = []
    for r in rows:
        params = f"{r['parameters'] / 1e6:.2f}M"
        if r["trainable"] != r["parameters"]:
            params += f" ({r['trainable'] / 1e6:.2f}M trained)"
        option = names.get(r["model"])  # conf/ names each option as the registry names its model
        if option is None:
            label = f"{r['model']} (`-S model.name={r['model']}`)"
        else:  # the pretrained row's model says which base: `pretrained` (GPT-2 small shape)
            label = f"`{option}`" + r["model"].removeprefix(option)
        if r["model"] == s["default_model"]:
            label += " (default)"
        speed = r["tokens_per_s"] / base
        cells.append([label, params, str(r["context"]), r["optimizer"],
                      f"{r['tokens_per_s']:,.0f}", f"{speed:.2f}x" if speed >= 0.1 else f"{speed:.3f}x",
                      f"{r['peak_rss_mib']:,.0f} MiB"])
    threads = f"{s['threads']} torch thread" + ("s" if s["threads"] != 1 else "")
    return (tables.table(["`model=`", "parameters", "context", "optimizer", "tokens/s",
                          "vs default", "peak RSS"], cells) + "\n\n"
            + f"{s['batch']}-token windows a step on {threads}; tokens/s over {s['steps']} timed steps "
            f"after {s['warmup']}, the best of {s['repeats']} passes over the models (peak RSS: the "
            "highest). " + tables.measured_on(result))


def measure_all(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every model of args.models, each in a fresh interpreter, args.repeats times in turn."""
    best: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-models-") as tmp:
        work = Path(tmp)
        started = time.perf_counter()
        setup(work)
        print(f"setup (prepare + tokenize, twice): {time.perf_counter() - started:.0f} s", file=sys.stderr)
        for _ in range(args.repeats):
            for model in args.models:
                args.load.sample()
                started = time.perf_counter()
                proc = subprocess.run([sys.executable, __file__, "--one", model, "--work", str(work),
                                       "--warmup", str(args.warmup), "--steps", str(args.steps),
                                       "--threads", str(args.threads)], capture_output=True, text=True)
                if proc.returncode:
                    raise SystemExit(f"bench_models: {model} failed\n{proc.stderr[-4000:]}")
                row = json.loads(proc.stdout.strip().splitlines()[-1])
                print(f"{model}: {time.perf_counter() - started:.0f} s, {row['tokens_per_s']:,.0f} tokens/s, "
                      f"{row['peak_rss_mib']:,.0f} MiB", file=sys.stderr)
                if model in best:
                    row["peak_rss_mib"] = max(row["peak_rss_mib"], best[model]["peak_rss_mib"])
                    row["tokens_per_s"] = max(row["tokens_per_s"], best[model]["tokens_per_s"])
                best[model] = row
        args.load.sample()
    return [best[m] for m in args.models]


def main() -> None:
    from codex_ml.models.registry import MODELS
    from codex_ml.params.train import ModelParams

    default = ModelParams().name
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="*", default=[*MODELS, PRETRAINED])
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    ap.add_argument("--steps", type=int, default=3, help="timed steps per model")
    ap.add_argument("--repeats", type=int, default=2, help="passes over the models; each one's best counts")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (train.threads)")
    tables.arguments(ap)
    ap.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure this model in this process
    ap.add_argument("--work", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.markdown:
        tables.print_saved("bench_models", markdown)
        return
    if args.one:
        os.chdir(args.work)  # dvclive looks for a DVC repository from the working directory
        print(json.dumps(measure(Path(args.work), args.one, args.warmup, args.steps, args.threads)))
        return
    if default not in args.models:
        args.models.insert(0, default)  # the ratios' reference
    args.load = tables.Load()
    rows = measure_all(args)
    settings = {"default_model": default, "warmup": args.warmup, "steps": args.steps,
                "repeats": args.repeats, "threads": args.threads, "batch": rows[0]["batch"]}
    tables.publish("bench_models", args, tables.result(rows, args.load, **settings), markdown)


if __name__ == "__main__":
    main()
