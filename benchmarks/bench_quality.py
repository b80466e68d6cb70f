"""What each code-quality rule (`data.quality`, codex_ml/data/filters.py) would drop from the stdlib
default, each rule alone, at its default threshold: the documents prepare keeps with the rules off (the
other filters, dedup and redaction applied), then each rule run over them. Counts, megabytes, share of
the bytes, and the largest files each rule drops.

    .venv/bin/python benchmarks/bench_quality.py --save      # measure; writes benchmarks/results/
    .venv/bin/python benchmarks/bench_quality.py --markdown  # the saved table (docs/sources.md)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tables  # benchmarks/tables.py, beside this file

from codex_ml.data.filters import QUALITY_REASONS, quality_reason
from codex_ml.data.stage import prepare
from codex_ml.params import DataParams, QualityParams
from codex_ml.shards import iter_prepared

NEVER = {"max_line_length": 10**9, "mean_line_length": 1e9, "min_alphanumeric_fraction": 0.0,
         "max_data_fraction": 1.0}
ALONE = {"max_line_length": "max_line_length", "mean_line_length": "mean_line_length",
         "alphanumeric_fraction": "min_alphanumeric_fraction", "data_file": "max_data_fraction"}


def kept_documents(work: Path) -> list[dict[str, Any]]:
    """The stdlib default's documents as prepare keeps them with the quality rules off."""
    prepare(DataParams(), work / "prepared", work / "prepare.json")
    return [record for split in ("train", "val", "test")
            for _, record in iter_prepared(work / "prepared", split)]


def measure(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    defaults = QualityParams()
    rows = []
    for reason in QUALITY_REASONS:
        limits = {**NEVER, ALONE[reason]: getattr(defaults, ALONE[reason])}
        dropped = [d for d in docs if quality_reason(d["text"], **limits) == reason]
        largest = sorted(dropped, key=lambda d: (-d["bytes"], d["path"]))[:3]
        rows.append({"rule": reason, "threshold": limits[ALONE[reason]], "files": len(dropped),
                     "bytes": sum(d["bytes"] for d in dropped), "largest": [d["path"] for d in largest]})
    return rows


def markdown(result: dict[str, Any]) -> str:
    total = result["settings"]["bytes"]
    sign = {"max_line_length": ">", "mean_line_length": ">", "alphanumeric_fraction": "<", "data_file": ">"}
    cells = [[f"`{r['rule']}` {sign[r['rule']]} {r['threshold']:g}", f"{r['files']:,}",
              f"{r['bytes'] / 1e6:.2f}", f"{100 * r['bytes'] / total:.2f}%",
              ", ".join(f"`{p}`" for p in r["largest"]) or "none"]
              for r in result["rows"]]
    s = result["settings"]
    return (tables.table(["rule, alone", "files", "MB", "share of bytes", "largest files dropped"], cells)
            + "\n\n" + f"Of the {s['documents']:,} documents ({total / 1e6:.1f} MB) prepare keeps from the "
            f"Python {s['python']} stdlib with the rules off. " + tables.measured_on(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    tables.arguments(parser)
    args = parser.parse_args()
    if args.markdown:
        tables.print_saved("bench_quality", markdown)
        return
    load = tables.Load()
    load.sample()
    with tempfile.TemporaryDirectory(prefix="bench-quality-") as tmp:
        docs = kept_documents(Path(tmp))
    rows = measure(docs)
    load.sample()
    settings = {"documents": len(docs), "bytes": sum(d["bytes"] for d in docs),
                "python": ".".join(map(str, sys.version_info[:3]))}
    tables.publish("bench_quality", args, tables.result(rows, load, **settings), markdown)


if __name__ == "__main__":
    main()
