"""Experiments: Hydra composition of conf/ (every combination of its groups), `dvc exp run -S`. The
queue runs in the docs tests (README.md's sweep, docs/experiments.md's queue); the whole pipeline's
runs, bit-identical reruns and an lr experiment in tests/test_pipeline_run.py."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from codex_ml.params import load_params
from tests.conftest import ROOT, compose, run


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
    run(["dvc", "exp", "run", "prepare", "-S", "model=llama-small", "-S", "train.lr=0.001",
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
