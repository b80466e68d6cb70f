"""The figures README.md and docs/ state, held to where they come from.

- The committed run (`dvc.lock`, `metrics/`): each CLAIM finds a sentence of a doc by a pattern whose
  groups are its figures, and compares each figure with the metric it states, at the doc's own rounding
  (as many decimals, thousands separators kept). When the run is re-recorded, this test names every
  sentence that no longer says what metrics/ says, with the figure it should say; a sentence reworded so
  that its pattern no longer matches fails too (update its pattern here, or drop the figure and its
  claim together).
- Benchmark tables: a doc holds a benchmark's table between `<!-- python benchmarks/<bench>.py ...
  --markdown -->` and `<!-- end -->` (benchmarks/tables.py); the command prints the table from the
  benchmark's saved results, and the doc must hold exactly that, with the command and machine it names.
"""

from __future__ import annotations

import csv
import importlib.util
import itertools
import json
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import pytest

from tests.conftest import ROOT

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
NUM = r"([\d,]+(?:\.\d+)?)"  # a figure as the docs write it: 1,089 or 3.10 or 1.006
Metrics = dict[str, Any]


@cache
def committed() -> Metrics:
    """The committed run's metrics, by file name, and training's val loss per eval step."""
    m: Metrics = {name: json.loads((ROOT / "metrics" / f"{name}.json").read_text())
                  for name in ("prepare", "tokenize", "eval")}
    m["train"] = json.loads((ROOT / "metrics/train/metrics.json").read_text())
    with open(ROOT / "metrics/train/plots/metrics/val/loss.tsv", newline="") as f:
        m["val_curve"] = {int(r["step"]): float(r["loss"]) for r in csv.DictReader(f, delimiter="\t")}
    return m


@dataclass(frozen=True)
class Claim:
    doc: str
    pattern: str  # a group for each figure, in order
    figures: tuple[Callable[[Metrics], Any], ...]  # what each group states


def at(*keys: str | int) -> Callable[[Metrics], Any]:
    """The committed run's value at keys (file name first: "eval", "val", "bits_per_byte")."""
    def get(m: Metrics) -> Any:
        value: Any = m
        for key in keys:
            value = value[key]
        return value
    return get


def redactions(*kinds: str) -> Callable[[Metrics], Any]:
    return lambda m: sum(m["prepare"]["redactions"][k] for k in kinds)


def per_mb(kind: str) -> Callable[[Metrics], Any]:
    return lambda m: m["prepare"]["redactions"][kind] / (sum(m["prepare"]["bytes"].values()) / 1e6)


def ratio(top: Callable[[Metrics], Any], bottom: Callable[[Metrics], Any]) -> Callable[[Metrics], Any]:
    return lambda m: top(m) / bottom(m)


def leaks(m: Metrics) -> int:
    return sum(m["eval"][s]["leak"]["near_duplicate_documents"] for s in ("val", "test"))


def train_time(m: Metrics) -> str:
    seconds = m["train"]["train"]["wall_time_s"]
    return f"{int(seconds // 60)} min {round(seconds % 60)} s"


def kept_checkpoints(m: Metrics) -> list[int]:
    """The checkpoints a run keeps: the newest and the train.keep_best (2) with the lowest val loss
    (params.yaml: a checkpoint every 100 steps)."""
    curve = {s: loss for s, loss in m["val_curve"].items() if s % 100 == 0}
    return sorted({max(curve), *sorted(curve, key=lambda s: (curve[s], -s))[:2]})


def falls_to_the_last(m: Metrics) -> Any:
    """The last eval step, when the val loss fell at every eval and that step was shipped."""
    steps = sorted(m["val_curve"])
    falls = all(m["val_curve"][a] > m["val_curve"][b] for a, b in itertools.pairwise(steps))
    shipped = m["train"]["train"]["shipped_step"] == steps[-1]
    return steps[-1] if falls and shipped else "(not: the val loss did not fall to a shipped last step)"


def planted(what: str) -> Callable[[Metrics], Any]:
    """The planted-secrets set's size (tests/planted_secrets.py), which docs/secrets.md states."""
    from tests.planted_secrets import CASES

    counts = {"cases": len(CASES), "kinds": len({c.kind for c in CASES}),
              "pairs": sum(len(c.contexts) for c in CASES)}
    return lambda m: counts[what]


REVIEWED = ("email", "ipv6", "ipv4", "basic_auth", "high_entropy", "password")  # found on the stdlib
BPB = (at("eval", "val", "bits_per_byte"), at("eval", "val", "bits_per_byte_ci", 0),
       at("eval", "val", "bits_per_byte_ci", 1))
TEST_BPB = (at("eval", "test", "bits_per_byte"), at("eval", "test", "bits_per_byte_ci", 0),
            at("eval", "test", "bits_per_byte_ci", 1))
XZ = (at("eval", "val", "baselines", "xz_bpb"), at("eval", "test", "baselines", "xz_bpb"))

CLAIMS = [
    # README.md
    Claim("README.md", rf"scores \*\*{NUM} bits per byte on val\*\* \[{NUM}, {NUM}\] and \*\*{NUM} on "
                       rf"test\*\* \[{NUM}, {NUM}\], against `xz -9e` at {NUM} and {NUM}",
          (*BPB, *TEST_BPB, *XZ)),
    Claim("README.md", r"its training took (\d+ min \d+ s) on a 2-core", (train_time,)),
    Claim("README.md", rf"`checkpoint-{NUM}` and `checkpoint-{NUM}` in the committed run",
          (lambda m: kept_checkpoints(m)[0], lambda m: kept_checkpoints(m)[-1])),
    Claim("README.md", rf"a near-duplicate in train, {NUM} in the committed run", (leaks,)),
    Claim("README.md", rf"{NUM} tokens whatever the corpus", (at("train", "train", "tokens_seen"),)),
    Claim("README.md", r"\(the default's training: (\d+ min \d+ s);", (train_time,)),
    Claim("README.md", rf"the stdlib's {NUM} \(`data.train_tokens`", (at("train", "data", "train_tokens"),)),
    Claim("README.md", rf"make the default {NUM} passes", (at("train", "train", "passes"),)),
    # docs/stages.md
    Claim("docs/stages.md", rf"invalid UTF-8 \({NUM} files of the 3.11 stdlib in the committed run\)",
          (at("prepare", "rejected", "invalid_utf8"),)),
    Claim("docs/stages.md", rf"In the committed run \(the 3.11 stdlib\) that is {NUM} files, among them",
          (at("prepare", "rejected", "generated"),)),
    Claim("docs/stages.md", rf"In the committed run that is {NUM} e-mail addresses \(authors and tests\), "
                            rf"{NUM} IP addresses, {NUM} credentials and {NUM} high-entropy strings",
          (redactions("email"), redactions("ipv4", "ipv6"), redactions("basic_auth", "password"),
           redactions("high_entropy"))),
    Claim("docs/stages.md", rf"hf-bpe at {NUM} tokens\): {NUM} bytes a token on train, {NUM} on val",
          (at("tokenize", "vocab_size"), at("tokenize", "bytes_per_token", "train"),
           at("tokenize", "bytes_per_token", "val"))),
    Claim("docs/stages.md", rf"The committed run \(`qwen3-mini`, {NUM}M parameters, Muon, {NUM} steps",
          (lambda m: m["train"]["model"]["parameters"] / 1e6, at("train", "train", "steps"))),
    Claim("docs/stages.md", rf"reaches a val loss of {NUM} nats/token .*? against {NUM} for the best "
                            "context-free",
          (at("train", "val", "loss"), at("train", "data", "unigram_entropy"))),
    Claim("docs/stages.md", rf"val scores {NUM} bits per byte \[{NUM}, {NUM}\] against xz -9e {NUM}, "
                            rf"gzip -9 {NUM} and unigram {NUM} \(test: {NUM} \[{NUM}, {NUM}\]; xz {NUM}, "
                            rf"gzip {NUM}\)",
          (*BPB, XZ[0], at("eval", "val", "baselines", "gzip_bpb"),
           at("eval", "val", "baselines", "unigram_bpb"), *TEST_BPB, XZ[1],
           at("eval", "test", "baselines", "gzip_bpb"))),
    Claim("docs/stages.md", r"the leak audit finds (no) val or test document with a near-duplicate",
          (lambda m: "no" if leaks(m) == 0 else f"{leaks(m)}",)),
    # docs/sources.md
    Claim("docs/sources.md", rf"in the committed run its {NUM} steps are {NUM} passes",
          (at("train", "train", "steps"), at("train", "train", "passes"))),
    Claim("docs/sources.md", rf"In the committed run the val loss falls at every eval up to step {NUM}, so "
                             "the shipped step is the last one", (falls_to_the_last,)),
    Claim("docs/sources.md", rf"In the committed run xz is {NUM}x the model's bits per byte on val and "
                             rf"{NUM}x on test, and the intervals are {NUM}x and {NUM}x wide",
          (ratio(XZ[0], BPB[0]), ratio(XZ[1], TEST_BPB[0]),
           ratio(BPB[2], BPB[1]), ratio(TEST_BPB[2], TEST_BPB[1]))),
    # docs/pipeline.md
    Claim("docs/pipeline.md", rf"keeps together: {NUM} in the committed run's val and test", (leaks,)),
    # docs/scaling.md
    Claim("docs/scaling.md", rf"In the committed run \(the 3.11 stdlib\) the cluster rule moved {NUM} "
                             rf"held-out documents \({NUM} kB\) into train, of {NUM} the path hash put in "
                             "val and test",
          (at("prepare", "cross_split_near_duplicates"),
           lambda m: m["prepare"]["cross_split_near_duplicate_bytes"] / 1e3,
           lambda m: (m["prepare"]["documents"]["val"] + m["prepare"]["documents"]["test"]
                      + m["prepare"]["cross_split_near_duplicates"]))),
    Claim("docs/scaling.md", rf"\(the committed run: {NUM} in val and in test\)", (leaks,)),
    # docs/secrets.md
    Claim("docs/secrets.md", rf"the 3.11 stdlib: {NUM} MB after the filters",
          (lambda m: sum(m["prepare"]["bytes"].values()) / 1e6,)),
    Claim("docs/secrets.md", rf"\| every key-format rule \({NUM} kinds\) \| {NUM} \|",
          (lambda m: sum(1 for k in m["prepare"]["redactions"] if k not in REVIEWED),
           lambda m: sum(v for k, v in m["prepare"]["redactions"].items() if k not in REVIEWED))),
    *(Claim("docs/secrets.md", rf"\| {kind} \| {NUM} \| {NUM} \|", (redactions(kind), per_mb(kind)))
      for kind in REVIEWED),
    Claim("docs/secrets.md", rf"builds {NUM} cases \({NUM} kinds\)", (planted("cases"), planted("kinds"))),
    Claim("docs/secrets.md", rf"{NUM} \(case, context\) pairs", (planted("pairs"),)),
]


def number_like(value: Any, written: str) -> str:
    """`value` written as `written` is: the same decimals, thousands separators if it has them."""
    if isinstance(value, str):
        return value
    decimals = len(written.split(".")[1]) if "." in written else 0
    return f"{value:{',' if ',' in written else ''}.{decimals}f}"


def test_every_committed_run_figure_in_the_docs_is_the_metrics() -> None:
    wrong = []
    for claim in CLAIMS:
        text = " ".join((ROOT / claim.doc).read_text(encoding="utf-8").split())
        found = re.search(claim.pattern, text)
        if not found:
            wrong.append(f"{claim.doc}: no sentence matches {claim.pattern!r} (reworded? update CLAIMS)")
            continue
        for written, figure in zip(found.groups(), claim.figures, strict=True):
            should = number_like(figure(committed()), written)
            if written != should:
                wrong.append(f"{claim.doc}: {found.group(0)!r} says {written}, metrics/ say {should}")
    assert not wrong, "figures that are not the committed run's:\n" + "\n".join(wrong)


def test_the_figures_test_reads_what_it_compares() -> None:
    """A changed metric is caught: the doc's rounding of a value, and a sentence that says another."""
    assert number_like(1.0062235, "1.006") == "1.006" and number_like(8943768, "8,943,768") == "8,943,768"
    assert number_like(0.2747, "0.28") == "0.27"  # what an outdated doc would be told to say
    assert kept_checkpoints({"val_curve": {100: 3.0, 200: 2.0, 300: 2.5}}) == [200, 300]


# --- Benchmark tables ------------------------------------------------------------------------------------

def benchmark_tables() -> Any:
    spec = importlib.util.spec_from_file_location("tables", ROOT / "benchmarks" / "tables.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def benchmark_blocks() -> list[tuple[str, str, str]]:
    block = benchmark_tables().BLOCK
    return [(doc.relative_to(ROOT).as_posix(), m.group(1), m.group(2)) for doc in DOCS
            for m in block.finditer(doc.read_text(encoding="utf-8"))]


@pytest.mark.parametrize(("doc", "command", "block"), benchmark_blocks())
def test_a_benchmark_table_is_what_its_benchmark_saved(doc: str, command: str, block: str) -> None:
    printed = subprocess.run([sys.executable, *command.split()[1:]], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.strip()
    assert block.strip() == printed, (f"{doc}: the table under `{command}` is not its output: run "
                                      "`python benchmarks/tables.py`")
    assert re.search(r"Measured by `python benchmarks/\S+\.py[^`]*` on a \d+-core ", printed)


def test_the_benchmark_tables_are_there() -> None:
    commands = {(doc, command) for doc, command, _ in benchmark_blocks()}
    assert {("README.md", "python benchmarks/bench_models.py --markdown"),
            ("docs/models.md", "python benchmarks/bench_models.py --markdown")} <= commands
    opened = sum(doc.read_text(encoding="utf-8").count("<!-- python benchmarks/") for doc in DOCS)
    assert opened == len(commands), "a benchmark block without its `<!-- end -->`"


def test_the_readme_names_the_params_each_stage_reads_as_dvc_yaml_lists_them() -> None:
    import yaml

    text = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    found = re.search(r"reads the params `dvc.yaml` lists for it: (.*?)\. ", text)
    assert found, "README.md: no sentence naming the params each stage reads"
    said = {part.split()[0]: set(re.findall(r"`([^`]+)`", part)) for part in found.group(1).split("; ")}
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    listed = {name: {p for p in stage.get("params", []) if isinstance(p, str)}
              for name, stage in stages.items()}
    assert said == listed
