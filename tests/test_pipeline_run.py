"""The whole pipeline through DVC on the quick profile, run once per module (the `quick_run` fixture)
and read by several tests: what every stage wrote and what `dvc metrics/plots show` and the report
make of it; the same pipeline from scratch in a second repository, bit for bit; and, each on a copy
of the run, the report diffing a committed baseline and an experiment with another lr.

One run shared instead of one per test: each full run costs about a minute of the suite's two cores
(issue: the suite stays well under 15 minutes). The tests that change the repository work on a copy."""

from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from codex_ml.shards import iter_prepared
from tests.chromium import chromium_binary, file_url, open_page
from tests.conftest import compose, new_repo, run
from tests.depskit import closure, covered, entry_of

pytestmark = pytest.mark.slow


def quick_params(tmp_path: Path, corpus: Path) -> dict[str, Any]:
    """conf/ with the quick profile on a folder of stdlib modules; one thread per stage: these models are
    tiny, and with two threads on a shared machine every small op waits for a descheduled thread."""
    out = compose(tmp_path, ["model=llama-micro", "train=quick", "data=dir", f"data.path={corpus}",
                             # the sample modules under 14 kB (the rest are rejected as too large: fast)
                             "data.max_file_bytes=14100", "data.val_fraction=0.2", "data.test_fraction=0.2",
                             # 22 files: below the dir profile's floors for val and test
                             "data.held_out.min_documents=0", "data.held_out.min_bytes=0",
                             "tokenizer.vocab_size=512", "tokenizer.workers=1",
                             "train.threads=1", "eval.bootstrap=50", "eval.completion_samples=4",
                             "eval.completion_max_tokens=16", "eval.threads=1", "eval.infill.line=4",
                             "eval.infill.block=2"], name="quick.yaml")
    return yaml.safe_load(out.read_text())


def numbers_only(metrics: dict[str, Any]) -> dict[str, Any]:
    """What `dvc metrics show` keeps of a metrics dict: no lists (intervals, leak examples), no nulls."""
    return {k: numbers_only(v) if isinstance(v, dict) else v for k, v in metrics.items()
            if not isinstance(v, list) and v is not None}


@dataclass(frozen=True)
class QuickRun:
    repo: Path
    params: dict[str, Any]
    log: str  # dvc repro's stdout + stderr


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory, stdlib_sample: Path) -> QuickRun:
    """`dvc repro` of all five stages in a fresh repository, committed (a baseline to diff against)."""
    root = tmp_path_factory.mktemp("quick_run")
    params = quick_params(root, stdlib_sample)
    repo = new_repo(root, params, name="first")
    proc = run(["dvc", "repro"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "a run"], repo)
    return QuickRun(repo, params, proc.stdout + proc.stderr)


def copy_of(src: Path, dst: Path) -> Path:
    """The repository with its DVC cache: a clone that already holds the run's outputs."""
    shutil.copytree(src, dst, symlinks=True)
    return dst


def test_every_stage_ran_and_the_metrics_agree_across_stages(quick_run: QuickRun) -> None:
    repo = quick_run.repo
    assert "eval val: bits/byte" in quick_run.log and "xz -9e" in quick_run.log  # the stage says it too
    shown = json.loads(run(["dvc", "metrics", "show", "--json"], repo).stdout)["" ]["data"]
    numbers = shown["metrics/eval.json"]["data"]  # DVC shows numbers (not the interval lists)
    ev = json.loads((repo / "metrics/eval.json").read_text())
    prep = json.loads((repo / "metrics/prepare.json").read_text())
    tok = json.loads((repo / "metrics/tokenize.json").read_text())
    assert numbers["val"]["bits_per_byte"] == ev["val"]["bits_per_byte"]
    for split in ("val", "test"):
        m = ev[split]
        assert m["documents"] == prep["documents"][split] > 0
        assert numbers_only(m) == numbers[split]
        assert m["bytes"] == prep["bytes"][split]
        assert m["tokens"] == tok["tokens"][split] + prep["documents"][split]  # text tokens + one EOS each
        low, high = m["bits_per_byte_ci"]
        assert 0 < low <= m["bits_per_byte"] <= high
        uniform_bpb = math.log2(tok["vocab_size"]) * m["tokens"] / m["bytes"]
        assert m["bits_per_byte"] < uniform_bpb  # 30 steps: better than guessing
        assert m["completion_samples"] == quick_run.params["eval"]["completion_samples"]
    table = run(["dvc", "metrics", "show"], repo).stdout  # one command away from `make repro`'s summary
    assert "val.bits_per_byte" in table and "val.baselines.xz_bpb" in table

    # train: dvclive's summary, committed by DVC, with the losses below uniform guessing
    meta = json.loads((repo / "data/tokens/meta.json").read_text())
    train = shown["metrics/train/metrics.json"]["data"]
    assert train["step"] == quick_run.params["train"]["max_steps"]
    assert {"loss", "learning_rate", "grad_norm", "tokens_per_s"} <= set(train["train"])
    assert train["val"]["loss"] < math.log(meta["vocab_size"])
    status = run(["dvc", "status"], repo).stdout
    assert "up to date" in status or status.strip() == ""


def test_the_model_folder_carries_the_pipelines_tokenizer(quick_run: QuickRun) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    repo = quick_run.repo
    model = AutoModelForCausalLM.from_pretrained(repo / "models/model")
    tok = AutoTokenizer.from_pretrained(repo / "models/model")
    meta = json.loads((repo / "data/tokens/meta.json").read_text())
    assert model.config.vocab_size == meta["vocab_size"] == len(tok)
    assert model.config.eos_token_id == meta["eos_id"] == tok.eos_token_id
    text = "def parse(self, text):\n    return text.split()\n"
    assert tok.decode(tok(text)["input_ids"]) == text


def test_both_cards_hold_the_runs_numbers_and_a_rerun_gives_the_same_bytes(quick_run: QuickRun,
                                                                          tmp_path: Path) -> None:
    from huggingface_hub import DatasetCard, ModelCard

    repo = copy_of(quick_run.repo, tmp_path / "repo")
    ev = json.loads((repo / "metrics/eval.json").read_text())
    prep = json.loads((repo / "metrics/prepare.json").read_text())
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    data_md5 = next(o["md5"] for o in lock["prepare"]["outs"] if o["path"] == "data/prepared")

    card = ModelCard.load(repo / "models/model/README.md")
    assert "Code at the commit whose dvc.lock records this folder" in card.text
    assert str(quick_run.repo) not in card.text and str(quick_run.params["data"]["path"]) not in card.text
    results = {(r.dataset_split, r.metric_type): r for r in card.data.eval_results}
    for split in ("val", "test"):
        assert results[(split, "bits_per_byte")].metric_value == ev[split]["bits_per_byte"]
        assert results[(split, "bits_per_byte")].metric_args == {"ci_95": ev[split]["bits_per_byte_ci"]}
        assert results[(split, "bits_per_byte_xz")].metric_value == ev[split]["baselines"]["xz_bpb"]
        assert results[(split, "bits_per_byte")].dataset_revision == data_md5  # DVC's hash, from dvc.lock
    meta = card.data.to_dict()["codex_ml"]
    assert meta["dataset_card"] == "../../data/prepared/README.md" and meta["data_dvc_md5"] == data_md5
    assert (repo / "models/model" / meta["dataset_card"]).resolve() == (repo / "data/prepared/README.md")
    dataset = DatasetCard.load(repo / "data/prepared/README.md")
    assert dataset.data.to_dict()["codex_ml"]["licenses"] == prep["licenses"]
    assert {s["name"]: s["num_examples"] for s in dataset.data.to_dict()["dataset_info"]["splits"]} == \
        prep["documents"]
    # the weights are train's, file for file; the card is the one file more
    trained = {p.relative_to(repo / "models/trained") for p in (repo / "models/trained").rglob("*")}
    assert {p.relative_to(repo / "models/model") for p in (repo / "models/model").rglob("*")} == \
        trained | {Path("README.md")}

    cards = [(repo / p).read_bytes() for p in ("models/model/README.md", "data/prepared/README.md")]
    run(["dvc", "repro", "--force", "-s", "prepare"], repo)
    run(["dvc", "repro", "--force", "-s", "release"], repo)
    assert [(repo / p).read_bytes() for p in ("models/model/README.md", "data/prepared/README.md")] == cards
    md = (repo / "reports/report.md").read_text()
    assert "../models/model/README.md" in md and "../data/prepared/README.md" in md
    data = md.split("## Data")[1].split("\n## ")[0]
    assert str(quick_run.params["data"]["path"]) not in data  # the corpus by its name, not where it is
    assert "Source code from the folder stdlib\\_sample0" in data


def test_plots_and_the_report_show_the_run(quick_run: QuickRun) -> None:
    repo = quick_run.repo
    plots = json.loads(run(["dvc", "plots", "show", "--json"], repo).stdout)["data"]
    assert "train/loss vs val/loss" in plots
    rows = plots["bits per byte per val document"][0]["content"]["data"]["values"]
    val_docs = [r["path"] for _, r in iter_prepared(repo / "data/prepared", "val")]
    assert sorted(r["path"] for r in rows) == sorted(val_docs)

    ev = json.loads((repo / "metrics/eval.json").read_text())
    tok = json.loads((repo / "metrics/tokenize.json").read_text())
    md = (repo / "reports/report.md").read_text()
    assert f"Validation bits per byte: {ev['val']['bits_per_byte']:.4f}" in md
    assert f"xz -9e {ev['val']['baselines']['xz_bpb']:.4f}" in md
    backend = quick_run.params['tokenizer']['backend']
    assert f"Backend {backend}, vocabulary {tok['vocab_size']} tokens" in md  # hf-bpe: no model_type
    assert f"Round trip decode(encode(doc)) == doc on 100.0% of the {tok['checked_documents']} val" in md
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    assert set(lock["stages"]) == {"prepare", "tokenize", "train", "eval", "release", "report"}
    for stage in ("prepare", "tokenize", "train", "eval"):
        assert f"| {stage} | `" in md, stage  # one provenance row per stage, with its hash
    assert "Loss" in md and "figures/train_loss.svg" in md
    if chromium_binary() is not None:
        page = open_page(file_url(repo / "reports/report.html"),
                         "document.querySelectorAll('figure svg').length")
        assert page.errors() == [] and page.value >= 5


# Outputs whose bytes record the machine, not the inputs: training telemetry (tokens/s, CPU, RAM and
# dvclive's timestamps), the model card that states train's time and the report that shows them (the
# weights are train's models/trained). Everything else must be byte-identical.
WALL_CLOCK_OUTPUTS = {"metrics/train/metrics.json", "metrics/train/plots/metrics", "models/model", "reports"}


def lock_hashes(repo: Path) -> dict[str, str]:
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    return {f"{stage}:{out['path']}": out["md5"]
            for stage, entry in lock["stages"].items() for out in entry.get("outs", [])}


def test_the_pipeline_from_scratch_twice_gives_bit_identical_outputs(quick_run: QuickRun,
                                                                      tmp_path: Path) -> None:
    """`dvc push` to a local remote and `dvc pull` into a fresh clone (nothing left to rerun) are run
    by the README's test (tests/test_docs.py), as the README shows them."""
    first = quick_run.repo
    second = new_repo(tmp_path, quick_run.params, name="second")
    run(["dvc", "repro"], second)
    a, b = lock_hashes(first), lock_hashes(second)
    assert a.keys() == b.keys()
    differ = {k for k in a if a[k] != b[k]}
    assert {k.split(":", 1)[1] for k in differ} <= WALL_CLOCK_OUTPUTS, differ
    stages = {k.split(":", 1)[0] for k in a if k.split(":", 1)[1] not in WALL_CLOCK_OUTPUTS}
    assert stages == {"prepare", "tokenize", "train", "eval"}  # release: the card states train's time
    # Within the training telemetry, the losses themselves are deterministic.
    for series in ("train/loss.tsv", "val/loss.tsv"):
        rows = [[r.split("\t") for r in (repo / "metrics/train/plots/metrics" / series).read_text()
                 .splitlines()] for repo in (first, second)]
        cols = rows[0][0]
        keep = [i for i, c in enumerate(cols) if c != "timestamp"]
        assert [[r[i] for i in keep] for r in rows[0]] == [[r[i] for i in keep] for r in rows[1]]
    assert os.path.exists(second / "reports/report.html")


def test_the_report_diffs_a_committed_baseline_and_only_the_report_reruns(quick_run: QuickRun,
                                                                          tmp_path: Path) -> None:
    repo = copy_of(quick_run.repo, tmp_path / "repo")
    current = yaml.safe_load((repo / "params.yaml").read_text())
    current["report"]["baseline_rev"] = "HEAD"
    (repo / "params.yaml").write_text(yaml.safe_dump(current, sort_keys=False))
    rerun = run(["dvc", "repro"], repo)
    out = rerun.stdout + rerun.stderr
    assert "Running stage 'report'" in out
    assert "Running stage 'eval'" not in out and "Running stage 'train'" not in out
    md = (repo / "reports/report.md").read_text()
    head = run(["git", "rev-parse", "HEAD"], repo).stdout.strip()
    diff = md.split("## Comparison with a baseline revision")[1].split("## Provenance")[0]
    assert f"Baseline `HEAD` = `{head[:12]}`" in diff
    assert "No metrics differ from HEAD." in diff
    assert '| `params.yaml` | report.baseline\\_rev | null | "HEAD" | changed |' in diff


def test_an_experiment_with_another_lr_starts_fresh_and_exp_show_compares_it(quick_run: QuickRun,
                                                                            tmp_path: Path) -> None:
    repo = copy_of(quick_run.repo, tmp_path / "repo")
    lr = quick_run.params["train"]["lr"]
    exp = run(["dvc", "exp", "run", "-S", "train.lr=0.001", "train"], repo)
    log = exp.stdout + exp.stderr
    assert f"train.lr: {lr} -> 0.001): not resumed" in log and "starting fresh" in log
    assert "Running stage 'prepare'" not in log and "Running stage 'tokenize'" not in log
    # Train metrics are committed with the experiment, so `dvc exp show` compares the two runs.
    rows = json.loads(run(["dvc", "exp", "show", "--json"], repo).stdout)
    main = next(r for r in rows if r.get("name") == "main")
    exp_rev = main["experiments"][0]["revs"][0]
    before = main["data"]["metrics"]["metrics/train/metrics.json"]["data"]["val"]["loss"]
    after = exp_rev["data"]["metrics"]["metrics/train/metrics.json"]["data"]["val"]["loss"]
    shown = json.loads((quick_run.repo / "metrics/train/metrics.json").read_text())
    assert before == shown["val"]["loss"] and after != before


def test_dvc_sees_a_change_to_any_module_a_stage_imports(quick_run: QuickRun, tmp_path: Path) -> None:
    """dvc.yaml's deps cover each stage's import closure (tests/test_dvc_deps.py); here real DVC reports
    the stage changed once a module of its closure changes: one module under each code dep of each stage
    gets a comment (DVC hashes bytes), and every module of every stage's closure lies under a dep that
    `dvc status` then reports modified."""
    repo = copy_of(quick_run.repo, tmp_path / "repo")
    assert json.loads(run(["dvc", "status", "--json"], repo).stdout) == {}
    stages = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]
    closures = {name: closure(entry_of(stage["cmd"], repo), repo) for name, stage in stages.items()}
    changed = {max(f for f in files if covered(f, dep)) for name, files in closures.items()
               for dep in stages[name]["deps"] if any(covered(f, dep) for f in files)}
    for file in changed:
        (repo / file).write_text((repo / file).read_text() + "\n# changed\n")
    status = json.loads(run(["dvc", "status", "--json"], repo).stdout)
    for name, files in closures.items():
        modified = {path for entry in status.get(name, []) if isinstance(entry, dict)
                    for path, what in entry.get("changed deps", {}).items() if what == "modified"}
        unseen = sorted(str(f) for f in files if not any(covered(f, dep) for dep in modified))
        assert not unseen, f"{name}: DVC sees no change to {unseen}"
    assert len(changed) > 10
