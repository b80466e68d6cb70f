"""prepare and tokenize as the corpus grows: MB/s and peak RSS at three sizes spanning 10x or more,
and throughput on 2 workers against 1, measured in this one command (noisy machines: read ratios).

The corpus is real code already on the machine: the `.py` files of this venv's site-packages (about
215 MB kept after filters), in sorted order, cut at three sizes and copied into a folder (`data=dir`).
Each stage runs in a fresh process (`python -m stages.prepare`, `python -m stages.tokenize`) in a scratch
workspace; its peak RSS is the largest sum of RSS over the process and its children, sampled every
20 ms.

Goals: tokenize's peak RSS <= 1 GiB on the whole corpus, and flat (within 20%) across a
10x growth once the corpus is larger than the tokenizer's sample; prepare >= 1.6x on 2 workers.

    .venv/bin/python benchmarks/bench_scale.py [--sizes 20,70,0] [--sample-mb 32]
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

import psutil
import yaml

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="20,70,0", help="corpus sizes in MB, 0 = every file")
    ap.add_argument("--sample-mb", type=int, default=32, help="tokenizer.sample_mb")
    ap.add_argument("--no-near-dedup", action="store_true",
                    help="without near-duplicate removal (the dir profile, what this corpus is, has it on)")
    a = ap.parse_args()
    data = {"near_dedup": {"enabled": not a.no_near_dedup}}
    files = corpus_files()
    py = sys.executable
    print(f"corpus: site-packages .py files ({len(files)} files, "
          f"{sum(s for _, s in files) / 1e6:.0f} MB); tokenizer.sample_mb={a.sample_mb}, near-dedup "
          f"{'off' if a.no_near_dedup else 'on'}")
    print(f"{'size':>8} {'kept MB':>8} | {'prepare s':>9} {'MB/s':>6} {'peak RSS':>9} | "
          f"{'tokenize s':>10} {'MB/s':>6} {'peak RSS':>9} {'shards':>6}")
    rows = []
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        for mb in (int(s) for s in a.sizes.split(",")):
            corpus = tmp / f"corpus-{mb}"
            build_corpus(files, mb, corpus)
            ws = workspace(tmp, corpus, data, {"sample_mb": a.sample_mb})
            p_s, p_rss = run_measured([py, "-m", "stages.prepare"], ws)
            t_s, t_rss = run_measured([py, "-m", "stages.tokenize"], ws)
            m = json.loads((ws / "metrics/prepare.json").read_text())
            t = json.loads((ws / "metrics/tokenize.json").read_text())
            kept = sum(m["bytes"].values()) / 1e6
            rows.append((mb, kept, p_s, p_rss, t_s, t_rss))
            print(f"{mb or 'all':>8} {kept:8.1f} | {p_s:9.1f} {kept / p_s:6.1f} {p_rss / 2**20:7.0f}Mi | "
                  f"{t_s:10.1f} {kept / t_s:6.1f} {t_rss / 2**20:7.0f}Mi {t['shards']['train']:>6}")
            shutil.rmtree(corpus)
        small, big = rows[0], rows[-1]
        print(f"growth {big[1] / small[1]:.1f}x: tokenize peak RSS x{big[5] / small[5]:.2f} "
              f"(goal within 1.2), prepare peak RSS x{big[3] / small[3]:.2f}; tokenize on the largest "
              f"{big[5] / 2**30:.2f} GiB (goal <= 1)")
        # Workers: the middle size, prepare and tokenize on 1 and 2 workers.
        mb = rows[len(rows) // 2][0]
        corpus = tmp / "corpus-workers"
        build_corpus(files, mb, corpus)
        times = {}
        for workers in (1, 2):
            ws = workspace(tmp, corpus, {**data, "workers": workers},
                           {"workers": workers, "sample_mb": a.sample_mb})
            times[workers] = (run_measured([py, "-m", "stages.prepare"], ws)[0],
                              run_measured([py, "-m", "stages.tokenize"], ws)[0])
        print(f"workers on {mb or 'all'} MB: prepare 2 vs 1 worker x{times[1][0] / times[2][0]:.2f} "
              f"(goal >= 1.6), tokenize x{times[1][1] / times[2][1]:.2f} (outputs identical: "
              "tests/test_scale.py)")


if __name__ == "__main__":
    main()
