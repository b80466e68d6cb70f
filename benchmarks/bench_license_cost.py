"""What license detection costs on the default corpus (the stdlib), against prepare's own time, measured
in this one command, interleaved (prepare, read, licenses, prepare, read, licenses, ...), best of N:

    .venv/bin/python benchmarks/bench_license_cost.py            # 3 rounds
    .venv/bin/python benchmarks/bench_license_cost.py --runs 5

- prepare: the stage's work with the default params (data.workers 0: every core), nothing else.
- read: the same walk reading every file, one process: the part of a license pass prepare already does.
- licenses: that walk and read plus `LicenseResolver.of` on every document, one process, a resolver
  made fresh each round (its folder caches start cold, as in a new stage run).

The detection's own cost is licenses minus read; its budget is 10% of prepare's time. The first round
also loads the detector's index, which a stage run pays once per process; it is printed apart. Wall and CPU
time are both printed (CPU is steadier on a machine shared with other work); the machines are noisy,
so compare the ratios, not the seconds.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from codex_ml.data.licenses import LicenseResolver
from codex_ml.data.sources import open_source, stdlib_root
from codex_ml.data.stage import prepare
from codex_ml.params import DataParams
from codex_ml.runtime import log


def cpu_seconds() -> float:
    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


def read_all(params: DataParams) -> int:
    return sum(len(d.data) for d in open_source(params).documents() if d.data is not None)


def licenses_all(params: DataParams) -> Counter[str]:
    resolver = LicenseResolver(stdlib_root())
    return Counter(resolver.of(d.path, d.data).expression
                   for d in open_source(params).documents() if d.data is not None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="interleaved rounds")
    args = parser.parse_args()
    log.setLevel("WARNING")
    params = DataParams()
    wall: dict[str, list[float]] = {"prepare": [], "read": [], "licenses": []}
    cpu: dict[str, list[float]] = {k: [] for k in wall}
    found: Counter[str] = Counter()
    with tempfile.TemporaryDirectory() as tmp:
        work: dict[str, Callable[[], object]] = {
            "prepare": lambda: prepare(params, Path(tmp) / "out", Path(tmp) / "m.json"),
            "read": lambda: read_all(params),
            "licenses": lambda: licenses_all(params),
        }
        for _ in range(args.runs):
            for name, fn in work.items():
                t, c = time.perf_counter(), cpu_seconds()
                result = fn()
                wall[name].append(time.perf_counter() - t)
                cpu[name].append(cpu_seconds() - c)
                if name == "licenses":
                    found = result  # type: ignore[assignment]
    load = os.getloadavg()
    print(f"stdlib {stdlib_root().name}: {sum(found.values())} documents; {args.runs} interleaved rounds; "
          f"{os.cpu_count()} cores, load {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    for name in wall:
        print(f"{name:9s}: wall best {min(wall[name]):6.2f} s, cpu best {min(cpu[name]):6.2f} s "
              f"(wall {', '.join(f'{t:.2f}' for t in wall[name])})")
    own_wall = min(wall["licenses"]) - min(wall["read"])
    own_cpu = min(cpu["licenses"]) - min(cpu["read"])
    print(f"detection alone (licenses - read): wall {own_wall:.2f} s = "
          f"{own_wall / min(wall['prepare']):.1%} of prepare's wall; cpu {own_cpu:.2f} s = "
          f"{own_cpu / min(cpu['prepare']):.1%} of prepare's cpu "
          f"(budget 10%)")
    cold = wall["licenses"][0] - wall["read"][0]
    print(f"first round (licenseclassifier's index loaded, once per process): detection {cold:.2f} s = "
          f"{cold / min(wall['prepare']):.1%} of prepare's wall")
    print("documents per license: " + ", ".join(f"{e} {n}" for e, n in found.most_common()))


if __name__ == "__main__":
    main()
