"""Benchmark results kept as files in benchmarks/results/, and the markdown tables the docs include.

A benchmark run with `--save` writes its rows here with the command that made them and the machine
they were measured on (CPU, cores, memory, and the load average while it ran: the machines are shared,
so the load says how much to trust a figure). `--markdown` prints the table from the saved file,
measuring nothing, and README.md and docs/ hold exactly that output between markers:

    <!-- python benchmarks/bench_models.py --markdown -->
    ...the table, and the line naming the command and the machine...
    <!-- end -->

tests/test_docs_figures.py reruns every marked command and fails while a doc's copy differs, so a table
changes only when its benchmark is rerun. `python benchmarks/tables.py` rewrites every marked block of
README.md and docs/*.md from the saved results.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def cpu_name() -> str:
    """The CPU's model name as /proc/cpuinfo gives it (Linux), else the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return " ".join(line.split(":", 1)[1].replace("(R)", "").replace("(TM)", "").split())
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    pages, page = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    return {"cpu": cpu_name(), "cores": os.cpu_count(), "memory_gib": round(pages * page / 2**30),
            "system": f"{platform.system()} {platform.release()}", "python": platform.python_version()}


class Load:
    """The 1-minute load average, sampled whenever `sample()` is called (before and after each run)."""

    def __init__(self) -> None:
        self.samples: list[float] = []

    def sample(self) -> None:
        self.samples.append(round(os.getloadavg()[0], 1))

    def span(self) -> list[float]:
        return [min(self.samples), max(self.samples)] if self.samples else []


def command() -> str:
    """This benchmark's command line as a user types it from the repository root."""
    script = Path(sys.argv[0]).resolve().relative_to(RESULTS.parent.parent)
    return " ".join(["python", str(script), *sys.argv[1:]])


def result(rows: list[dict[str, Any]], load: Load, **settings: Any) -> dict[str, Any]:
    """A run's rows with what made them: this command, this machine, the load while it ran."""
    return {"command": command(), "machine": machine(), "load_average": load.span(), "settings": settings,
            "rows": rows}


def save(name: str, data: dict[str, Any]) -> None:
    """benchmarks/results/{name}.json: what `--markdown` renders."""
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{name}.json"
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    tmp.replace(out)
    print(f"wrote {out}", file=sys.stderr)


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--save", action="store_true", help="write the results to benchmarks/results/")
    parser.add_argument("--markdown", action="store_true", help="print the saved table; measure nothing")


def publish(name: str, args: argparse.Namespace, data: dict[str, Any],
            markdown: Callable[[dict[str, Any]], str]) -> None:
    """Save a run's results when asked (--save), and print its table."""
    if args.save:
        save(name, data)
    print(markdown(data))


def print_saved(name: str, markdown: Callable[[dict[str, Any]], str]) -> None:
    print(markdown(load(name)))


def load(name: str) -> dict[str, Any]:
    path = RESULTS / f"{name}.json"
    if not path.exists():
        sys.exit(f"{path} does not exist: run the benchmark with --save first")
    return json.loads(path.read_text())


def measured_on(result: dict[str, Any]) -> str:
    """The line under a table: which command measured it, on what, under which load."""
    m = result["machine"]
    low, high = result["load_average"] or [None, None]
    load = "" if low is None else (f", load average {low}" if low == high else f", load average {low}-{high}")
    return (f"Measured by `{result['command']}` on a {m['cores']}-core {m['cpu']} ({m['memory_gib']} GiB, "
            f"{m['system'].split()[0]}, Python {m['python']}{load}).")


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


# README.md and docs/*.md hold each benchmark's table between these markers (the module docstring).
BLOCK = re.compile(r"<!-- (python benchmarks/\S+\.py [^>]*?--markdown[^>]*?) -->\n(.*?)<!-- end -->", re.S)


def refresh(doc: Path) -> bool:
    """Rewrite every marked block of `doc` with its command's output; True when the file changed."""
    root = RESULTS.parent.parent

    def output(match: re.Match[str]) -> str:
        argv = [sys.executable, *match.group(1).split()[1:]]
        proc = subprocess.run(argv, cwd=root, capture_output=True, text=True)
        if proc.returncode:  # no saved results yet: the block stays as it is
            print(f"{doc.name}: `{match.group(1)}` failed: {proc.stderr.strip()}", file=sys.stderr)
            return match.group(0)
        return f"<!-- {match.group(1)} -->\n{proc.stdout.strip()}\n<!-- end -->"

    text = doc.read_text(encoding="utf-8")
    new = BLOCK.sub(output, text)
    if new != text:
        doc.write_text(new, encoding="utf-8")
    return new != text


if __name__ == "__main__":
    top = RESULTS.parent.parent
    for doc in [top / "README.md", *sorted((top / "docs").glob("*.md"))]:
        if refresh(doc):
            print(f"updated {doc.relative_to(top)}")
