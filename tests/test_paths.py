"""The pipeline's layout is written once, in codex_ml/paths.py: dvc.yaml's deps, outs, metrics and plots
name the same paths, and the stages' defaults and the `codex` commands' take theirs from it."""

from __future__ import annotations

import inspect
from pathlib import Path

import yaml

from codex_ml import paths
from codex_ml.eval.commands import eval_command, generate_command
from codex_ml.eval.inputs import EvalInputs
from codex_ml.report.inputs import Paths
from codex_ml.training.stage import TrainPaths
from tests.conftest import ROOT

CODE = ("codex_ml/", "stages/", "base-models")  # deps that are code or the in-repo base models
# paths.py's paths that are not a stage's dep or out: the params file, the lock DVC writes, the folder
# dvclive writes train's metrics and plots into, and files inside data/prepared and reports
NOT_IN_DVC_YAML = {paths.PARAMS, paths.LOCK, paths.TRAIN_LIVE, paths.DECONTAMINATED, paths.PREPARED_CARD,
                   paths.MODEL_CARD,
                   paths.REPORT_PAGE}


def layout() -> set[Path]:
    return {v for k, v in vars(paths).items() if k.isupper() and isinstance(v, Path)}


def named(entries: list) -> list[str]:
    """dvc.yaml entries as paths: `- path` or `- path: {options}`."""
    return [next(iter(e)) if isinstance(e, dict) else e for e in entries]


def test_dvc_yaml_names_the_paths_codex_ml_paths_holds() -> None:
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    in_dvc_yaml: dict[Path, set[str]] = {}
    for name, stage in stages.items():
        files = [d for d in stage["deps"] if not d.startswith(CODE)]
        files += [f for key in ("outs", "metrics", "plots") for f in named(stage.get(key, []))]
        for f in files:
            in_dvc_yaml.setdefault(Path(f), set()).add(name)
    assert set(in_dvc_yaml) == layout() - NOT_IN_DVC_YAML
    # each output is one stage's, and a later stage's dep
    assert in_dvc_yaml[paths.PREPARED] == {"prepare", "tokenize", "eval", "release"}
    assert in_dvc_yaml[paths.TOKENS] == {"tokenize", "train", "eval"}
    assert in_dvc_yaml[paths.TRAINED] == {"train", "eval", "release"}
    assert in_dvc_yaml[paths.MODEL] == {"release", "report"}
    assert in_dvc_yaml[paths.EVAL_METRICS] == {"eval", "release", "report"}
    assert in_dvc_yaml[paths.REPORTS] == {"report"}


def test_the_stages_defaults_and_the_commands_take_the_layout() -> None:
    for default in (TrainPaths(), Paths()):
        assert {v for v in vars(default).values() if v != Path(".")} <= layout()
    evaluated = EvalInputs(model_dir=paths.MODEL)
    assert {evaluated.tokens_dir, evaluated.prepared_dir, evaluated.tokenizer_dir} <= layout()
    options = {**inspect.signature(eval_command).parameters, **inspect.signature(generate_command).parameters}
    defaults = {p.default for p in options.values() if isinstance(p.default, Path)}
    assert defaults and defaults <= layout()
    assert TrainPaths.under(Path("/w")).model == Path("/w") / paths.TRAINED
