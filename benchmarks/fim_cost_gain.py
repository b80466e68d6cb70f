"""FIM's cost and gain, measured to choose train.fim.rate's default (docs/fim.md's table): the same
model, data and steps trained at rate 0.5 and at rate 0 for each seed, every model scored on the same
val documents.

- cost: left-to-right val bits per byte of the FIM-trained model against the rate-0 one of the same
  seed (the eval stage's scoring of every val document; the ratio is FIM's relative cost);
- gain: the infilling metrics of each (eval/infill.py): the middle's bits per byte with the suffix
  against without it, exact match and edit similarity of the written line.

Training takes the pipeline's data/tokens and models/tokenizer, and writes each run under --out
(run-<rate>-<seed>/, the pipeline's layout). `train` runs one model; `score` scores every trained one
and prints the table. The steps are --steps (the default model's schedule, shortened).

    dvc repro tokenize
    python benchmarks/fim_cost_gain.py train --rate 0.5 --seed 1337 --steps 400
    python benchmarks/fim_cost_gain.py train --rate 0 --seed 1337 --steps 400
    python benchmarks/fim_cost_gain.py score                     # the table, from every run under --out
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

OUT = Path("benchmarks/out/fim")


def train(args: argparse.Namespace) -> None:
    from codex_ml.params import load_params
    from codex_ml.paths import PARAMS, TOKENIZER, TOKENS
    from codex_ml.runtime import setup_logging
    from codex_ml.training.stage import TrainPaths, run_training

    setup_logging()
    params = load_params(PARAMS)
    steps = args.steps
    tp = params.train.replace(seed=args.seed, max_steps=steps, warmup_steps=max(1, steps // 12),
                              eval_every=max(1, steps // 4), checkpoint_every=max(1, steps // 4),
                              threads=args.threads, fim=params.train.fim.replace(rate=args.rate))
    root = args.out / f"run-{args.rate:g}-{args.seed}"
    root.mkdir(parents=True, exist_ok=True)
    for link, target in ((root / TOKENS, TOKENS), (root / TOKENIZER, TOKENIZER)):
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            link.symlink_to(target.resolve())
    summary = run_training(params.replace(train=tp), TrainPaths.under(root))
    (root / "train.json").write_text(json.dumps(summary, indent=1, default=str), encoding="utf-8")


def score(args: argparse.Namespace) -> None:
    from codex_ml.eval.stage import EvalInputs, run_eval, write_outputs
    from codex_ml.params import load_params
    from codex_ml.paths import PARAMS

    params = load_params(PARAMS)
    ev = params.eval.replace(threads=args.threads, leak_audit=False)
    for root in sorted(args.out.glob("run-*")):
        if not (root / "models/model").is_dir() or (root / "eval.json").is_file():
            continue
        inputs = EvalInputs.under(root, prepared_dir=Path("data/prepared").resolve())
        metrics, results, settings = run_eval(ev, inputs, splits=("val",), train_seq_len=params.train.context)
        write_outputs(metrics, results, settings, root / "eval.json", root / "eval")
    table(args.out, params.eval.bootstrap)


def rows(root: Path, name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (root / "eval" / name).read_text(encoding="utf-8").splitlines()]


def paired(a: list[float], b: list[float], weights: list[float], resamples: int) -> tuple[float, list[float]]:
    """sum(a - b) / sum(weights) over documents, with its 95% bootstrap interval (documents resampled)."""
    from codex_ml.stats.bootstrap import ratio_interval, resample_counts

    numer, denom = np.asarray(a) - np.asarray(b), np.asarray(weights, dtype=np.float64)
    ci = ratio_interval(numer, denom, resample_counts(len(numer), resamples, [1337, 7]))
    return float(numer.sum() / denom.sum()), list(ci) if ci else []


def table(out: Path, resamples: int = 1000) -> None:
    runs: dict[tuple[float, int], Path] = {}
    for root in sorted(out.glob("run-*")):
        if (root / "eval.json").is_file():
            _, rate_text, seed_text = root.name.split("-")
            runs[(float(rate_text), int(seed_text))] = root
    print("| rate | seed | val bpb | line: exact match | edit similarity | middle bpb left to right | "
          "with suffix | block: middle bpb left to right | with suffix |")
    print("|---|---|---|---|---|---|---|---|---|")
    for (rate, seed), root in sorted(runs.items()):
        m = json.loads((root / "eval.json").read_text(encoding="utf-8"))["val"]
        line, block = m["infill"]["line"], m["infill"]["block"]
        cells = [m["bits_per_byte"], line.get("exact_match"), line.get("edit_similarity"),
                 line["middle_bpb_l2r"], line.get("middle_bpb_fim"), block["middle_bpb_l2r"],
                 block.get("middle_bpb_fim")]
        print(f"| {rate:g} | {seed} | " + " | ".join(_num(c) for c in cells) + " |")
    for (rate, seed), fim in sorted(runs.items()):
        if rate == 0 or (0.0, seed) not in runs:
            continue
        plain = runs[(0.0, seed)]
        a, b = rows(fim, "val.ndjson"), rows(plain, "val.ndjson")
        assert [r["path"] for r in a] == [r["path"] for r in b]  # the same val documents
        base = sum(r["bits_per_byte"] * r["bytes"] for r in b) / sum(r["bytes"] for r in b)
        bits = [[r["bits_per_byte"] * r["bytes"] for r in x] for x in (a, b)]
        diff, ci = paired(bits[0], bits[1], [r["bytes"] for r in a], resamples)
        print(f"seed {seed}: left-to-right val bits per byte, rate {rate:g} minus rate 0: {diff:+.4f} "
              f"{_ci(ci)} ({diff / base:+.2%} relative)")
        for kind in ("line", "block"):
            # FIM model with the suffix against the rate-0 model left to right: what an editor gains
            fa = [r for r in rows(fim, "val_infill.ndjson") if r["kind"] == kind]
            pb = [r for r in rows(plain, "val_infill.ndjson") if r["kind"] == kind]
            assert [(r["path"], r["line"]) for r in fa] == [(r["path"], r["line"]) for r in pb]
            docs = sorted({r["path"] for r in fa})
            per = {d: [0.0, 0.0, 0.0] for d in docs}
            for x, y in zip(fa, pb, strict=True):
                per[x["path"]][0] += y["bits_l2r"]
                per[x["path"]][1] += x["bits_fim"]
                per[x["path"]][2] += x["bytes"]
            gain, gci = paired([v[0] for v in per.values()], [v[1] for v in per.values()],
                               [v[2] for v in per.values()], resamples)
            own = json.loads((fim / "eval.json").read_text(encoding="utf-8"))["val"]["infill"][kind]
            print(f"seed {seed}: {kind} middles, rate-0 model left to right minus rate-{rate:g} model with "
                  f"the suffix: {gain:+.4f} bits per byte {_ci(gci)} ({len(fa)} spans, {len(docs)} "
                  f"documents); the rate-{rate:g} model's own suffix gain {own['suffix_gain_bpb']:+.4f} "
                  f"{_ci(own['suffix_gain_bpb_ci'])}")


def _ci(ci: list[float]) -> str:
    return f"[{ci[0]:+.4f}, {ci[1]:+.4f}]" if ci else "(no interval)"


def _num(v: object) -> str:
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=("train", "score", "table"))
    ap.add_argument("--rate", type=float, default=0.5)
    ap.add_argument("--seed", type=int, default=1337)
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("THREADS", "0")))
    ap.add_argument("--completion", type=int, default=200, help="line completion samples")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    {"train": train, "score": score, "table": lambda a: table(a.out)}[args.command](args)


if __name__ == "__main__":
    main()
