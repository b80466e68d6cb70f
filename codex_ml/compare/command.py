"""`codex compare A B`: the command over runs.py, pairing.py and render.py."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from codex_ml.compare.metrics import METRICS
from codex_ml.compare.pairing import compare
from codex_ml.compare.render import markdown, text
from codex_ml.compare.runs import load_runs, split_side
from codex_ml.io import write_text
from codex_ml.runtime import StageError


def compare_command(
    a: Annotated[str, typer.Argument(help="run A: a git revision, a `dvc exp` name, `workspace`, or a "
                                          "folder holding metrics/; seeds pooled as A1,A2,A3")],
    b: Annotated[str, typer.Argument(help="run B, the same kinds; B - A is reported")],
    md: Annotated[bool, typer.Option("--md", help="markdown for a pull-request comment")] = False,
    out: Annotated[Path | None, typer.Option(help="write the output to this file as well")] = None,
    alpha: Annotated[float, typer.Option(min=1e-6, max=0.5,
                                         help="the p-value below which a difference counts")] = 0.01,
    resamples: Annotated[int, typer.Option(min=0, help="bootstrap resamples and sign flips "
                                                        "(0: no intervals or tests)")] = 10000,
    seed: Annotated[int, typer.Option(help="seed of the resamples")] = 1337,
    top: Annotated[int, typer.Option(min=0, help="how many of the documents that moved most to list")] = 5,
) -> None:
    """B against A, paired on the documents both scored: each metric's difference, its 95% interval
    and p-value, and the documents that moved most."""
    try:
        side_a, side_b = split_side(a), split_side(b)
        files = sorted({f for m in METRICS for _, f in m.files()})
        runs = load_runs([*side_a, *side_b], files)
        result = compare([runs[n] for n in side_a], [runs[n] for n in side_b], resamples=resamples,
                         seed=seed, alpha=alpha, top=top)
    except StageError as exc:
        print(f"codex compare: error: {exc}", file=sys.stderr)
        raise typer.Exit(2) from None
    output = markdown(result) if md else text(result)
    if out is not None:
        write_text(out, output)
    sys.stdout.write(output)
