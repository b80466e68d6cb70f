"""Experiments and sharing: Hydra composition of conf/, `dvc exp run -S`, the queue, a DVC remote,
and bit-identical reruns of the whole pipeline in clean repositories."""

from __future__ import annotations

import itertools
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from dvc.utils.hydra import compose_and_dump

from codex_ml.params import load_params
from tests.conftest import ROOT, run


def compose(tmp_path: Path, overrides: list[str], name: str = "composed.yaml") -> Path:
    """conf/ composed exactly as `dvc exp run` does it (DVC's own function)."""
    out = tmp_path / name
    compose_and_dump(out, str(ROOT / "conf"), None, "config", str(ROOT), overrides)
    return out


def test_params_yaml_is_the_composition_of_conf(tmp_path: Path) -> None:
    """`dvc repro` reads params.yaml without recomposing: it must equal conf/'s composition.
    After editing conf/, run `make params`."""
    composed = compose(tmp_path, [])
    assert yaml.safe_load(composed.read_text()) == yaml.safe_load((ROOT / "params.yaml").read_text()), \
        "params.yaml differs from the composition of conf/: run `make params` and commit both"
    assert composed.read_text() == (ROOT / "params.yaml").read_text()  # byte for byte, no hand edits


# Every option of every group in conf/, found on disk: a new option file is covered without editing this.
GROUPS = {group.name: sorted(f.stem for f in group.glob("*.yaml"))
          for group in sorted((ROOT / "conf").iterdir()) if group.is_dir()}
COMBINATIONS = [dict(zip(GROUPS, choice, strict=True)) for choice in itertools.product(*GROUPS.values())]
# The order config.yaml's defaults list composes them in: a later group's values win.
ORDER = [next(iter(d)) for d in yaml.safe_load((ROOT / "conf/config.yaml").read_text())["defaults"]
         if isinstance(d, dict)]


def option_values(group: str, option: str) -> dict[str, Any]:
    """What conf/<group>/<option>.yaml sets, as dotted keys of params.yaml (`@package _global_`
    options set keys of any section; the others, keys of their group's section)."""
    text = (ROOT / "conf" / group / f"{option}.yaml").read_text()
    raw = {k: v for k, v in (yaml.safe_load(text) or {}).items() if k != "defaults"}
    return flatten(raw if "# @package _global_" in text else {group: raw})


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in tree.items():
        out.update(flatten(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def mandatory_values(values: dict[str, Any], tmp_path: Path) -> list[str]:
    """Overrides for an option's `???` keys, with real paths (a folder for dir, a file for jsonl)."""
    fills = {"data.path": tmp_path / "corpus" if values.get("data.source") == "dir" else tmp_path / "c.jsonl",
             "model.pretrained": tmp_path / "model"}
    missing = sorted(k for k, v in values.items() if v == "???")
    unknown = [k for k in missing if k not in fills]
    assert not unknown, f"no test value for the mandatory {unknown}: add one to mandatory_values()"
    return [f"{k}={fills[k]}" for k in missing]


def test_conf_has_the_groups_the_project_documents() -> None:
    assert {"data", "model", "train"} <= set(GROUPS) and len(COMBINATIONS) >= 24


@pytest.mark.parametrize("choice", COMBINATIONS, ids=lambda c: ",".join(f"{g}={o}" for g, o in c.items()))
def test_every_combination_of_group_options_is_runnable(tmp_path: Path, choice: dict[str, str]) -> None:
    """Composed exactly as `dvc exp run -S group=option ...` does it, then validated as a stage does:
    no shipped profile may fail a later stage (eval's window against the quick profile's seq_len ...)."""
    (tmp_path / "corpus").mkdir()
    (tmp_path / "model").mkdir()
    (tmp_path / "c.jsonl").write_text('{"text": "x = 1\\n", "path": "x.py"}\n')
    overrides = [f"{g}={o}" for g, o in choice.items()]
    for group, option in choice.items():
        overrides += mandatory_values(option_values(group, option), tmp_path)
    params = load_params(compose(tmp_path, overrides))  # every key and every cross-stage check
    composed = flatten(params.model_dump())
    groups = sorted(choice, key=lambda g: ORDER.index(g) if g in ORDER else len(ORDER))
    for i, group in enumerate(groups):  # an option's own values reach the stages (later groups win)
        own = {k: v for k, v in option_values(group, choice[group]).items() if v != "???"}
        later = {k for g in groups[i + 1:] for k in option_values(g, choice[g])}
        assert {k: composed[k] for k in own if k not in later} == \
            {k: v for k, v in own.items() if k not in later}, f"conf/{group}/{choice[group]}.yaml"


def test_dvc_exp_run_composes_group_choices_and_overrides(make_repo: Callable[..., Path]) -> None:
    repo = make_repo(hydra=True)
    # The composition happens whatever stage runs; prepare alone keeps the test fast.
    run(["dvc", "exp", "run", "prepare", "-S", "model=small", "-S", "train.lr=0.001",
         "-S", "data.val_fraction=0.05", "--name", "small-lr"], repo)
    params = load_params(repo / "params.yaml")
    assert params.model.name == "llama-small" and params.train.lr == 0.001
    assert params.data.val_fraction == 0.05
    shown = json.loads(run(["dvc", "exp", "show", "--json"], repo).stdout)
    exps = {e["name"]: e for e in _experiments(shown)}
    data = exps["small-lr"]["data"]
    assert data["params"]["params.yaml"]["data"]["model"]["name"] == "llama-small"
    assert data["metrics"]["metrics/prepare.json"]["data"]["documents"]["val"] > 0


def _experiments(shown: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for baseline in shown:
        for exp in baseline.get("experiments") or []:
            for rev in exp["revs"]:
                out.append({"name": rev.get("name") or exp.get("name"), "data": rev["data"]})
    return out


def test_queue_runs_two_experiments_side_by_side(make_repo: Callable[..., Path]) -> None:
    repo = make_repo(hydra=True)
    for fraction in ("0.05", "0.1"):
        run(["dvc", "exp", "run", "--queue", "prepare", "-S", f"data.val_fraction={fraction}",
             "--name", f"val-{fraction}"], repo)
    run(["dvc", "queue", "start", "-j", "2"], repo)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        status = run(["dvc", "queue", "status"], repo).stdout
        if "Queued" not in status and "Running" not in status:
            break
        time.sleep(2)
    run(["dvc", "queue", "stop", "--kill"], repo, check=False)
    assert "Failed" not in status, status
    shown = json.loads(run(["dvc", "exp", "show", "--json"], repo).stdout)
    exps = {e["name"]: e["data"] for e in _experiments(shown)}
    assert {"val-0.05", "val-0.1"} <= set(exps), status
    vals = {n: exps[n]["metrics"]["metrics/prepare.json"]["data"]["documents"]["val"]
            for n in ("val-0.05", "val-0.1")}
    assert 0 < vals["val-0.05"] < vals["val-0.1"]


# --- The whole pipeline on the quick profile: remote round trip, bit-identical reruns ----------------

# Outputs whose bytes record the machine, not the inputs: training telemetry (tokens/s, CPU, RAM and
# dvclive's timestamps) and the report that shows it. Everything else must be byte-identical.
WALL_CLOCK_OUTPUTS = {"metrics/train/metrics.json", "metrics/train/plots/metrics", "reports"}


def quick_params(tmp_path: Path, corpus: Path) -> dict[str, Any]:
    out = compose(tmp_path, ["model=micro", "train=quick", "data=dir", f"data.path={corpus}",
                             "data.max_file_bytes=14100", "data.val_fraction=0.2",
                             "data.test_fraction=0.2", "tokenizer.vocab_size=512",
                             "eval.bootstrap=50", "eval.completion_samples=4",
                             "eval.completion_max_tokens=16"], name="quick.yaml")
    return yaml.safe_load(out.read_text())


def lock_hashes(repo: Path) -> dict[str, str]:
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    return {f"{stage}:{out['path']}": out["md5"]
            for stage, entry in lock["stages"].items() for out in entry.get("outs", [])}


@pytest.mark.slow
def test_the_pipeline_from_scratch_twice_gives_bit_identical_outputs(tmp_path: Path, stdlib_sample: Path,
                                                                      make_repo: Callable[..., Path]) -> None:
    """`dvc push` to a local remote and `dvc pull` into a fresh clone (nothing left to rerun) are run
    by the README's test (tests/test_docs.py), as the README shows them."""
    params = quick_params(tmp_path, stdlib_sample)
    first = make_repo(params, name="first")
    run(["dvc", "repro"], first)

    # The same pipeline from scratch in a second clean repository: identical outputs.
    second = make_repo(params, name="second")
    run(["dvc", "repro"], second)
    a, b = lock_hashes(first), lock_hashes(second)
    assert a.keys() == b.keys()
    differ = {k for k in a if a[k] != b[k]}
    assert {k.split(":", 1)[1] for k in differ} <= WALL_CLOCK_OUTPUTS, differ
    stages = {k.split(":", 1)[0] for k in a if k.split(":", 1)[1] not in WALL_CLOCK_OUTPUTS}
    assert stages == {"prepare", "tokenize", "train", "eval"}
    # Within the training telemetry, the losses themselves are deterministic.
    for series in ("train/loss.tsv", "val/loss.tsv"):
        rows = [[r.split("\t") for r in (repo / "metrics/train/plots/metrics" / series).read_text()
                 .splitlines()] for repo in (first, second)]
        cols = rows[0][0]
        keep = [i for i, c in enumerate(cols) if c != "timestamp"]
        assert [[r[i] for i in keep] for r in rows[0]] == [[r[i] for i in keep] for r in rows[1]]
    assert os.path.exists(second / "reports/report.html")
