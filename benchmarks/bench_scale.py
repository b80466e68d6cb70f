"""prepare and tokenize as the corpus grows: MB/s and peak RSS at three sizes spanning 10x or more,
and throughput on 2 workers against 1, measured in this one command (noisy machines: read ratios).

The corpus is real code already on the machine: the `.py` files of this venv's site-packages, in
sorted order, cut at three sizes and copied into a folder (`data=dir`, near-duplicate removal on as
that profile has it). Each stage runs in a fresh process (`python -m stages.prepare`,
`python -m stages.tokenize`) in a scratch workspace, with the environment dvc.yaml gives it; its peak
RSS is the largest sum of RSS over the process and its children, sampled every 20 ms.

    .venv/bin/python benchmarks/bench_scale.py --save [--sizes 20,70,0] [--sample-mb 32]
    .venv/bin/python benchmarks/bench_scale.py --markdown     # the saved table (docs/scaling.md)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tables  # benchmarks/tables.py, beside this file

ROOT = Path(__file__).resolve().parents[1]


def corpus_files() -> list[tuple[Path, int]]:
    site = Path(sysconfig.get_paths()["purelib"])
    files = []
    for path in sorted(site.rglob("*.py")):
        if "__pycache__" in path.parts or not path.is_file() or path.is_symlink():
            continue
        files.append((path, path.stat().st_size))
    return files


def build_corpus(files: list[tuple[Path, int]], mb: int, out: Path) -> int:
    """The first files (sorted) up to `mb` MB (0: all), copied under `out`. Returns the bytes copied."""
    site = Path(sysconfig.get_paths()["purelib"])
    total = 0
    for path, size in files:
        if mb and total + size > mb * 1_000_000:
            break
        target = out / path.relative_to(site)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        total += size
    return total


def run_measured(cmd: list[str], cwd: Path) -> tuple[float, int]:
    """Wall seconds and peak RSS (bytes, summed over the process tree) of one command, with the
    environment dvc.yaml's commands set (MALLOC_ARENA_MAX=2 for tokenize)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "CODEX_LOG_LEVEL": "WARNING", "MALLOC_ARENA_MAX": "2"})
    root = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            rss = sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])
        except psutil.Error:
            rss = 0
        peak = max(peak, rss)
        time.sleep(0.02)
    seconds = time.perf_counter() - start
    if proc.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stderr.read().decode() if proc.stderr else ''}")
    return seconds, peak


def workspace(tmp: Path, corpus: Path, data: dict, tokenizer: dict) -> Path:
    ws = tmp / "ws"
    if ws.exists():
        shutil.rmtree(ws)
    ws.mkdir()
    (ws / "stages").symlink_to(ROOT / "stages")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"].update({"source": "dir", "path": str(corpus)})
    for key, value in data.items():
        params["data"][key] = {**params["data"][key], **value} if isinstance(value, dict) else value
    params["tokenizer"].update(tokenizer)
    (ws / "params.yaml").write_text(yaml.safe_dump(params))
    return ws


def measure(sizes: list[int], data: dict, sample_mb: int, load: tables.Load) -> dict[str, Any]:
    files = corpus_files()
    py = sys.executable
    rows = []
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        for mb in sizes:
            corpus = tmp / f"corpus-{mb}"
            build_corpus(files, mb, corpus)
            ws = workspace(tmp, corpus, data, {"sample_mb": sample_mb})
            load.sample()
            p_s, p_rss = run_measured([py, "-m", "stages.prepare"], ws)
            t_s, t_rss = run_measured([py, "-m", "stages.tokenize"], ws)
            m = json.loads((ws / "metrics/prepare.json").read_text())
            t = json.loads((ws / "metrics/tokenize.json").read_text())
            rows.append({"kept_bytes": sum(m["bytes"].values()), "prepare_s": p_s, "prepare_rss": p_rss,
                         "tokenize_s": t_s, "tokenize_rss": t_rss, "train_shards": t["shards"]["train"]})
            print(rows[-1], file=sys.stderr)
            shutil.rmtree(corpus)
        # Workers: the middle size, prepare and tokenize on 1 and 2 workers.
        mb = sizes[len(sizes) // 2]
        corpus = tmp / "corpus-workers"
        build_corpus(files, mb, corpus)
        workers: dict[int, tuple[float, float]] = {}
        for n in (1, 2):
            ws = workspace(tmp, corpus, {**data, "workers": n}, {"workers": n, "sample_mb": sample_mb})
            load.sample()
            workers[n] = (run_measured([py, "-m", "stages.prepare"], ws)[0],
                          run_measured([py, "-m", "stages.tokenize"], ws)[0])
        load.sample()
    return {"rows": rows, "workers_mb": mb, "prepare_2_vs_1": workers[1][0] / workers[2][0],
            "tokenize_2_vs_1": workers[1][1] / workers[2][1]}


def markdown(result: dict[str, Any]) -> str:
    rows, s = result["rows"], result["settings"]

    def mib(n: float) -> str:
        return f"{n / 2**20:,.0f} MiB"

    cells = [[f"{r['kept_bytes'] / 1e6:.0f} MB", f"{r['prepare_s']:.1f} s", mib(r["prepare_rss"]),
              f"{r['tokenize_s']:.1f} s", mib(r["tokenize_rss"]), str(r["train_shards"])] for r in rows]
    small, big = rows[0], rows[-1]
    growth = big["kept_bytes"] / small["kept_bytes"]
    return (tables.table(["corpus kept", "prepare", "prepare peak RSS", "tokenize", "tokenize peak RSS",
                          "train shards"], cells)
            + f"\n\nFrom the smallest corpus to the largest ({growth:.1f}x), tokenize's peak RSS grew "
            f"{big['tokenize_rss'] / small['tokenize_rss']:.2f}x and prepare's "
            f"{big['prepare_rss'] / small['prepare_rss']:.2f}x. On {s['workers_mb']} MB, 2 workers "
            f"against 1: prepare {s['prepare_2_vs_1']:.2f}x as fast, tokenize {s['tokenize_2_vs_1']:.2f}x "
            "(the same output bytes: tests/test_scale.py). "
            f"`tokenizer.sample_mb` {s['sample_mb']}, near-dedup {'on' if s['near_dedup'] else 'off'}; "
            "the corpus is this venv's site-packages. " + tables.measured_on(result))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="20,70,0", help="corpus sizes in MB, 0 = every file")
    ap.add_argument("--sample-mb", type=int, default=32, help="tokenizer.sample_mb")
    ap.add_argument("--no-near-dedup", action="store_true",
                    help="without near-duplicate removal (the dir profile, what this corpus is, has it on)")
    tables.arguments(ap)
    a = ap.parse_args()
    if a.markdown:
        tables.print_saved("bench_scale", markdown)
        return
    load = tables.Load()
    measured = measure([int(x) for x in a.sizes.split(",")], {"near_dedup": {"enabled": not a.no_near_dedup}},
                       a.sample_mb, load)
    rows = measured.pop("rows")
    result = tables.result(rows, load, **measured, sample_mb=a.sample_mb, near_dedup=not a.no_near_dedup)
    tables.publish("bench_scale", a, result, markdown)


if __name__ == "__main__":
    main()
