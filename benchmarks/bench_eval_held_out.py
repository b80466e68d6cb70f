"""What eval costs at a smaller `data.val_fraction` = `test_fraction` than the run's: eval's time on the
held-out sets of each fraction, in two parts: the scoring, and the rest (eval's time less the scoring
timed alone: mostly the line completions).

A document's split is a hash of its path (data/splits.py), so a run that held out F for val and F for
test (u < 2F) holds every document a fraction f <= F would hold out: test is u < f, val f <= u < 2f
(near-duplicate clusters aside, which move a few documents). The run's model scores each fraction's
sets in this one process, the fractions alternating over the rounds so that a shared machine's load
falls on all alike; the best of the rounds. The scoring grows with the held-out tokens, the completions
do not (`eval.completion_samples` lines a split): each larger fraction is also estimated from the
smallest one's parts (its rest, plus its scoring times the ratio of tokens), the figure to use when
only the smallest is measured (`--fractions 0.02`).

    python benchmarks/bench_eval_held_out.py --fractions 0.02,0.1 --held-out 0.1 --rounds 1
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

from codex_ml import paths
from codex_ml.kernels import pin_from_params

Sets = dict[str, tuple[list[Any], list[str]]]  # split -> (documents, their texts)


def held_out_sets(everything: list[tuple[Any, str]], f: float) -> Sets:
    """val and test as a fraction f of the documents would make them."""
    from codex_ml.data.splits import hash_unit

    bounds = {"test": (0.0, f), "val": (f, 2 * f)}
    sets: Sets = {}
    for split, (lo, hi) in bounds.items():
        chosen = [(d, t) for d, t in everything if lo <= hash_unit(d.path) < hi]
        sets[split] = ([d for d, _ in chosen], [t for _, t in chosen])
    return sets


def timed(sets: Sets, model: Any, tokenizer: Any, params: Any, kw: dict[str, Any]) -> tuple[float, float]:
    """(scoring, the rest of eval) in seconds, over the splits of `sets`."""
    from codex_ml.eval import stage
    from codex_ml.eval.score import score_documents

    scoring = rest = 0.0
    for name, (docs, texts) in sets.items():
        t0 = time.perf_counter()
        score_documents(model, [d.ids for d in docs], batch_size=params.batch_size, desc=f"score {name}",
                        **kw)
        t1 = time.perf_counter()
        stage.evaluate_split(model, tokenizer, name, docs, texts, None, params, **kw)  # scores again
        scoring, rest = scoring + t1 - t0, rest + (time.perf_counter() - t1) - (t1 - t0)
    return scoring, rest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fractions", default="0.02,0.1",
                    help="val = test fractions to time, each <= --held-out")
    ap.add_argument("--held-out", type=float, default=0.1,
                    help="the run's data.val_fraction (= test_fraction)")
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()
    pin_from_params(paths.PARAMS, "eval")  # before torch loads, as the eval stage pins them
    import torch

    from codex_ml.eval import stage
    from codex_ml.eval.inputs import EvalInputs
    from codex_ml.params import load_params

    params = load_params(paths.PARAMS)
    if params.eval.threads:
        torch.set_num_threads(params.eval.threads)
    inputs = EvalInputs(model_dir=paths.MODEL)
    device = torch.device("cpu")
    model = stage.load_model(inputs.model_dir, device)
    tokenizer = stage.load_tokenizer(inputs.model_dir, inputs.tokenizer_dir)
    eos_id, pad_id, _ = stage.token_ids(inputs, model, tokenizer)
    window = stage.resolve_window(model, params.eval, params.train.context)
    kw = dict(window=window, stride=params.eval.stride_in(window), eos_id=eos_id, pad_id=pad_id,
              device=device)
    everything = [pair for split in ("test", "val")
                  for pair in zip(*stage.load_documents(inputs, split, tokenizer, eos_id), strict=True)]
    fractions = sorted(float(f) for f in args.fractions.split(","))
    if fractions[-1] > args.held_out + 1e-9:
        raise SystemExit(f"bench_eval_held_out: {fractions[-1]} is more than the run held out "
                         f"({args.held_out})")
    sets = {f: held_out_sets(everything, f) for f in fractions}
    best: dict[float, tuple[float, float]] = {}
    load = [os.getloadavg()[0]]
    for _ in range(args.rounds):
        for f in fractions:
            scoring, rest = timed(sets[f], model, tokenizer, params.eval, kw)
            if f not in best or scoring + rest < sum(best[f]):
                best[f] = (scoring, rest)
    load.append(os.getloadavg()[0])
    print(f"{model.__class__.__name__}, window {window}, {torch.get_num_threads()} threads, "
          f"best of {args.rounds}; load average {load[0]:.1f} before, {load[1]:.1f} after")
    print("| fraction | documents | tokens | scoring | the rest | eval | estimate from the smallest |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    tokens = {f: sum(len(d.ids) for docs, _ in sets[f].values() for d in docs) for f in fractions}
    small = fractions[0]
    for f in fractions:
        scoring, rest = best[f]
        estimate = best[small][1] + best[small][0] * tokens[f] / tokens[small]
        print(f"| {f:g} | {sum(len(docs) for docs, _ in sets[f].values())} | {tokens[f]:,} | {scoring:.0f} s "
              f"| {rest:.0f} s | {scoring + rest:.0f} s | {estimate:.0f} s "
              f"({estimate / sum(best[small]):.2f}x the smallest) |")


if __name__ == "__main__":
    main()
