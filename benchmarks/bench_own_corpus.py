"""The README's own-corpus command, as written, on libraries of this venv's site-packages that no one
here wrote: documents per split, what the quality filters dropped, passes, the shipped step, val and
test bits/byte against xz, and wall time (the table in docs/sources.md).

    .venv/bin/python benchmarks/bench_own_corpus.py --save    # huggingface_hub networkx pandas
    .venv/bin/python benchmarks/bench_own_corpus.py networkx  # one library, nothing saved
    .venv/bin/python benchmarks/bench_own_corpus.py --markdown  # the saved table (docs/sources.md)

Each library runs in a fresh copy of this project (its git-tracked and untracked, not ignored files, as
a clone has them, committed on main) with this venv, as README.md's own-corpus command, read from
README.md, with the library's folder for `<your-repo>`.

Wall time is the whole command (prepare, tokenize, train, eval, report) on this machine: compare it
only between rows measured on the same machine.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tables  # benchmarks/tables.py, beside this file

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
DEFAULT = ("huggingface_hub", "networkx", "pandas")  # ~3 MB, ~6 MB and ~25 MB of .py in this venv
README_COMMAND = "dvc exp run -S data=dir -S data.path=<your-repo>"
PASSES_LINE = re.compile(r"train: [\d,]+ steps of [\d,]+ tokens = [\d.]+ passes[^\n]*")


def py_megabytes(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*.py") if f.is_file()) / 1e6


def fresh_copy(dst: Path) -> None:
    """This project as a fresh clone has it, committed on main, with this venv."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           cwd=ROOT, capture_output=True, check=True).stdout.decode().split("\0")
    for rel in filter(None, files):
        if (ROOT / rel).is_file():
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, dst / rel)
    (dst / ".venv").symlink_to(VENV_BIN.parent)
    who = ["-c", "user.name=bench", "-c", "user.email=bench@localhost"]
    for cmd in (["git", "init", "-q", "-b", "main"], ["git", "add", "-A"],
                ["git", *who, "commit", "-qm", "copy"]):
        subprocess.run(cmd, cwd=dst, check=True, capture_output=True)


def readme_command(folder: Path) -> list[str]:
    """README.md's own-corpus command as written there, for `folder`."""
    lines = [line for line in (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
             if line.startswith(README_COMMAND)]
    if len(lines) != 1:
        raise SystemExit(f"README.md: expected one line starting {README_COMMAND!r}, found {len(lines)}")
    return [arg.replace("<your-repo>", str(folder)) for arg in shlex.split(lines[0], comments=True)]


def run_library(name: str, site: Path, work: Path) -> dict[str, Any]:
    repo = work / name
    fresh_copy(repo)
    env = {**os.environ, "PATH": f"{repo / '.venv/bin'}:{os.environ['PATH']}",
           "VIRTUAL_ENV": str(repo / ".venv")}
    command = readme_command(site / name)
    started = time.perf_counter()
    proc = subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    output = proc.stdout + proc.stderr
    if proc.returncode:
        raise SystemExit(f"{name}: `{' '.join(command)}` failed ({proc.returncode}):\n{output[-4000:]}")

    def metrics(rel: str) -> Any:
        return json.loads((repo / rel).read_text(encoding="utf-8"))

    prepare, train, ev = metrics("metrics/prepare.json"), metrics("metrics/train/metrics.json"), \
        metrics("metrics/eval.json")
    quality = ("max_line_length", "mean_line_length", "alphanumeric_fraction", "data_file", "generated")
    return {
        "library": name,
        "py_mb": py_megabytes(site / name),
        "documents": prepare["documents"],
        "bytes": prepare["bytes"],
        "dropped": {r: prepare["rejected"][r] for r in quality if prepare["rejected"][r]},
        "near_duplicates": prepare["near_duplicates"],
        "passes_line": (PASSES_LINE.findall(output) or ["(no passes line)"])[0],
        "passes": train["train"]["passes"],
        "steps": train["train"]["steps"],
        "shipped_step": train["train"]["shipped_step"],
        "shipped": train["train"]["shipped"],
        **{split: {"bpb": ev[split]["bits_per_byte"], "ci": ev[split]["bits_per_byte_ci"],
                   "too_wide": ev[split]["bits_per_byte_ci_too_wide"],
                   "xz": ev[split]["baselines"]["xz_bpb"]} for split in ("val", "test")},
        "wall_s": wall,
    }


def markdown(result: dict[str, Any]) -> str:
    return (table(result["rows"]) + "\n\nThe README's own-corpus command as written, `data.path` the "
            "library's folder. " + tables.measured_on(result))


def table(rows: list[dict[str, Any]]) -> str:
    def bpb(r: dict[str, Any], split: str) -> str:
        m = r[split]
        lo, hi = m["ci"] or (float("nan"), float("nan"))
        wide = " (too wide)" if m["too_wide"] else ""
        return f"{m['bpb']:.3f} [{lo:.2f}, {hi:.2f}]{wide} vs {m['xz']:.3f}"

    lines = ["| library (.py) | documents train/val/test | dropped | passes | steps, shipped | "
             "val bits/byte vs xz | test bits/byte vs xz | wall |", "|" + "---|" * 8]
    for r in rows:
        d = r["documents"]
        dropped = ", ".join(f"{k} {v}" for k, v in r["dropped"].items()) or "-"
        lines.append(f"| {r['library']} ({r['py_mb']:.1f} MB) | {d['train']:,}/{d['val']:,}/{d['test']:,} | "
                     f"{dropped} | {r['passes']:.2f} | {r['steps']:,}, {r['shipped_step']:,} | "
                     f"{bpb(r, 'val')} | {bpb(r, 'test')} | {r['wall_s'] / 60:.0f} min |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("libraries", nargs="*", default=list(DEFAULT))
    tables.arguments(parser)
    args = parser.parse_args()
    if args.markdown:
        tables.print_saved("bench_own_corpus", markdown)
        return
    site = Path(sysconfig.get_paths()["purelib"])
    missing = [n for n in args.libraries if not (site / n).is_dir()]
    if missing:
        raise SystemExit(f"not in {site}: {', '.join(missing)}")
    rows = []
    load = tables.Load()
    with tempfile.TemporaryDirectory(prefix="bench_own_corpus_") as tmp:
        for name in args.libraries:
            print(f"{name}: {py_megabytes(site / name):.1f} MB of .py ...", flush=True)
            load.sample()
            row = run_library(name, site, Path(tmp))
            print(f"  {row['passes_line']}\n  shipped: step {row['shipped_step']}, {row['shipped']}",
                  flush=True)
            rows.append(row)
    load.sample()
    tables.publish("bench_own_corpus", args, tables.result(rows, load), markdown)


if __name__ == "__main__":
    main()
