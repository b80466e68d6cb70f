"""Params validation: bad values stop the run with one line per problem, each naming its key, every
problem of the file at once."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml

from codex_ml.params import (
    EvalParams,
    LoraParams,
    Params,
    ParamsError,
    TokenizerParams,
    load_params,
    parse_params,
)
from tests.conftest import ROOT, merge, run, stage_command


def test_project_params_yaml_is_valid_and_matches_defaults_where_documented() -> None:
    params = load_params(ROOT / "params.yaml")
    assert params.data.source == "stdlib"
    assert params.data.include == ["**/*.py"]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"data": {"sauce": "stdlib"}}, "data.sauce: unknown key"),
        ({"dataa": {}}, "dataa: unknown key"),
        ({"data": {"source": "web"}}, "data.source: expected one of stdlib, dir, jsonl, hf, got 'web'"),
        ({"data": {"max_file_bytes": "big"}}, "data.max_file_bytes: expected an integer, got 'big'"),
        ({"data": {"max_file_bytes": 1.5}}, "data.max_file_bytes: expected an integer"),
        ({"data": {"redact_secrets": "yes"}}, "data.redact_secrets: expected true or false"),
        ({"data": {"val_fraction": -0.1}}, "data.val_fraction: expected a number in [0, 1), got -0.1"),
        ({"data": {"val_fraction": 0.6, "test_fraction": 0.5}},
         "data.val_fraction + data.test_fraction: expected a sum < 1"),
        ({"data": {"source": "dir"}}, "data.path: required when data.source is 'dir'"),
        ({"data": {"source": "jsonl", "path": None}}, "data.path: required when data.source is 'jsonl'"),
        ({"data": {"include": "**/*.py"}}, "data.include: expected a list of strings"),
        ({"data": {"include": [3]}}, "data.include[0]: expected a string, got 3"),
        ({"data": {"include": []}}, "data.include: expected at least one glob"),
        ({"data": {"max_file_bytes": 0}}, "data.max_file_bytes: expected an integer > 0, got 0"),
        ({"data": "stdlib"}, "data: expected a mapping of DataParams keys, got 'stdlib'"),
        # Strict types: no string or float to int, no int to bool, no NaN; null only where allowed.
        ({"train": {"seq_len": "128"}}, "train.seq_len: expected an integer, got '128'"),
        ({"train": {"seq_len": True}}, "train.seq_len: expected an integer, got true"),
        ({"train": {"seq_len": None}}, "train.seq_len: expected an integer, got null"),
        ({"train": {"compile": 1}}, "train.compile: expected true or false, got 1"),
        ({"train": {"lr": "3e-4"}}, "train.lr: expected a number, got '3e-4'"),
        ({"train": {"lr": float("nan")}}, "train.lr: expected a finite number, got nan"),
        ({"train": {"peak_tflops": -1}}, "train.peak_tflops: expected a number in [0, 100000] (TFLOP/s"),
        ({"train": {"peak_tflops": 989e12}}, "train.peak_tflops: expected a number in [0, 100000]"),  # FLOP/s
        ({"train": {"peak_tflops": "989"}}, "train.peak_tflops: expected a number, got '989'"),
        # a range inside an optional key: said as for any other, with "or null"
        ({"train": {"max_epochs": 0}}, "train.max_epochs: expected a number > 0 or null, got 0"),
        ({"data": {"path": 3}}, "data.path: expected a string or null, got 3"),
        ({"model": {"lora": {"r": 4, "bias": "none"}}},
         "model.lora.bias: unknown key; expected one of alpha, dropout, enabled, qlora, r, target_modules"),
        ({"model": {"lora": {"target_modules": ["q_proj", None]}}},
         "model.lora.target_modules[1]: expected a string, got null"),
        ({"model": {"lora": 8}}, "model.lora: expected a mapping of LoraParams keys, got 8"),
    ],
)
def test_bad_params_name_the_key(raw: dict, message: str) -> None:
    with pytest.raises(ParamsError) as err:
        parse_params(raw, "params.yaml")
    assert str(err.value).startswith("params.yaml: ")
    assert message in str(err.value)
    assert "\n" not in str(err.value)  # one line, whatever pydantic found


def test_empty_sections_take_every_default() -> None:
    assert parse_params({"data": None, "model": {"lora": None}}) == Params()


def test_sections_built_directly_fail_with_the_same_line() -> None:
    """CLIs build sections from options (`codex tokenizer train --backend ...`)."""
    with pytest.raises(ParamsError, match=r"^tokenizer\.backend: expected one of sentencepiece, hf-bpe, "
                                          r"pretrained, got 'wordpiece'$"):
        TokenizerParams(backend="wordpiece")  # type: ignore[arg-type]
    with pytest.raises(ParamsError, match=r"^model\.lora\.r: expected an integer, got 1\.5$"):
        LoraParams(r=1.5)  # type: ignore[arg-type]


def test_ints_are_accepted_where_numbers_are_expected() -> None:
    value = parse_params({"data": {"val_fraction": 0}, "model": {"lora": {"alpha": 16}}})
    assert value.data.val_fraction == 0.0 and isinstance(value.model.lora.alpha, float)


def test_params_are_frozen_and_dump_to_plain_data() -> None:
    params = Params()
    with pytest.raises(ValueError, match="frozen"):
        params.train.seq_len = 64  # type: ignore[misc]
    dumped = params.model_dump()
    assert dumped["model"]["lora"]["target_modules"] == ["q_proj", "v_proj"]
    assert parse_params(dumped) == params


# --- Cross-stage checks: what eval (or train) would refuse after minutes of work is refused up front --


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"train": {"seq_len": 32, "final_seq_len": 0}, "eval": {"completion_max_tokens": 40}},
         "eval.completion_max_tokens: expected < the eval window (eval.window=0 -> train.seq_len=32), "
         "got 40"),
        ({"train": {"seq_len": 64, "final_seq_len": 0}, "eval": {"stride": 64}},
         "eval.stride: expected < the eval window (eval.window=0 -> train.seq_len=64), got 64"),
        ({"train": {"seq_len": 64, "final_seq_len": 0}, "eval": {"window": 128}},
         "eval.window: expected 0 or <= train.seq_len=64 (a model from the registry has train.seq_len "
         "positions), got 128"),
        ({"train": {"seq_len": 64, "final_seq_len": 128}, "eval": {"window": 256}},
         "eval.window: expected 0 or <= train.final_seq_len=128 (a model from the registry has "
         "train.final_seq_len positions), got 256"),
        ({"train": {"seq_len": 64, "final_seq_len": 128}, "eval": {"stride": 128}},
         "eval.stride: expected < the eval window (eval.window=0 -> train.final_seq_len=128), got 128"),
        ({"train": {"max_steps": 50, "warmup_steps": 5, "eval_every": 100}},
         "train.eval_every: expected <= train.max_steps (50), got 100"),
    ],
)
def test_cross_stage_conflicts_name_both_keys(raw: dict, message: str) -> None:
    with pytest.raises(ParamsError) as err:
        parse_params(raw, "params.yaml")
    assert str(err.value) == f"params.yaml: {message}"


def test_dependent_defaults_follow_the_window() -> None:
    """The eval window is the model's context: train.final_seq_len (default 512), else train.seq_len;
    completion_max_tokens 0 = min(64, window // 2)."""
    default = parse_params({})
    assert default.train.context == 512 and default.train.final_steps == 480
    assert default.eval_window() == 512 and default.eval.completion_tokens_in(512) == 64
    plain = parse_params({"train": {"seq_len": 64, "final_seq_len": 0}})
    assert plain.eval_window() == 64 and plain.eval.completion_tokens_in(64) == 32
    assert plain.train.final_steps == 0
    assert plain.eval.stride_in(64) == 32
    # Nothing to complete: the completion length cannot conflict.
    parse_params({"train": {"seq_len": 32, "final_seq_len": 0},
                  "eval": {"completion_samples": 0, "completion_max_tokens": 40}})
    # A pretrained model has its own positions: only eval reads them (checked there).
    wide = parse_params({"model": {"pretrained": "/m"}, "train": {"seq_len": 64}, "eval": {"window": 512}})
    assert wide.eval_window() == 512
    assert EvalParams(completion_max_tokens=10).completion_tokens_in(8) == 10  # explicit wins (checked)


@pytest.mark.parametrize(
    ("train", "message"),
    [
        ({"final_seq_len": 192}, "train.final_seq_len: expected 0 or a multiple > 1 of train.seq_len=128, "
                                 "got 192"),
        ({"final_seq_len": 128}, "train.final_seq_len: expected 0 or a multiple > 1 of train.seq_len=128, "
                                 "got 128"),
        ({"final_seq_len": 512, "batch_size": 6}, "train.batch_size: expected a multiple of "
         "train.final_seq_len / train.seq_len = 4 (each final window takes the tokens of 4 windows), got 6"),
        ({"final_fraction": 1.5}, "train.final_fraction: expected a number in [0, 1], got 1.5"),
    ],
)
def test_final_window_params_are_checked(train: dict, message: str) -> None:
    with pytest.raises(ParamsError) as err:
        parse_params({"train": train}, "params.yaml")
    assert str(err.value) == f"params.yaml: {message}"


def test_every_problem_of_a_file_is_reported_in_one_run(tmp_path: Path) -> None:
    """train.max_steps: 60 meets warmup_steps and eval_every (100 by default): one run names both, one
    line each, beside a bad value in another section; the stage prints each line as its own error."""
    raw = {"train": {"max_steps": 60}, "data": {"val_fraction": -1}}
    with pytest.raises(ParamsError) as err:
        parse_params(raw, "params.yaml")
    assert err.value.problems == [
        "params.yaml: data.val_fraction: expected a number in [0, 1), got -1",
        "params.yaml: train.warmup_steps: expected an integer in [0, train.max_steps=60), got 100",
        "params.yaml: train.eval_every: expected <= train.max_steps (60), got 100"]
    shutil.copytree(ROOT / "stages", tmp_path / "stages", ignore=shutil.ignore_patterns("__pycache__"))
    base = yaml.safe_load((ROOT / "params.yaml").read_text())
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(merge(base, raw), sort_keys=False))
    proc = run(stage_command("prepare"), tmp_path, check=False)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [f"codex-ml prepare: error: {line}" for line in err.value.problems]
    assert not (tmp_path / "data").exists()


def test_a_cross_stage_conflict_stops_the_first_stage(tmp_path: Path) -> None:
    """prepare reads only data.*, yet refuses a run that eval would refuse, before writing anything."""
    shutil.copytree(ROOT / "stages", tmp_path / "stages", ignore=shutil.ignore_patterns("__pycache__"))
    base = yaml.safe_load((ROOT / "params.yaml").read_text())
    conflict = {"train": {"seq_len": 32, "final_seq_len": 0}, "eval": {"completion_max_tokens": 40}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(merge(base, conflict), sort_keys=False))
    proc = run(stage_command("prepare"), tmp_path, check=False)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == (
        "codex-ml prepare: error: params.yaml: eval.completion_max_tokens: expected < the eval window "
        "(eval.window=0 -> train.seq_len=32), got 40")
    assert not (tmp_path / "data").exists() and not (tmp_path / "metrics").exists()


def test_load_params_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ParamsError, match="params file not found"):
        load_params(tmp_path / "missing.yaml")
    bad = tmp_path / "params.yaml"
    bad.write_text("data: [unclosed\n")
    with pytest.raises(ParamsError) as err:
        load_params(bad)
    assert str(err.value) == (f"{bad}:2:1: not valid YAML: expected ',' or ']', but got '<stream end>' "
                              "(while parsing a flow sequence at 1:7)")
    bad.write_text("data:\n  source: stdlib\n   path: x\n")
    with pytest.raises(ParamsError) as err:
        load_params(bad)
    assert str(err.value) == f"{bad}:3:8: not valid YAML: mapping values are not allowed here"
    bad.write_text(yaml.safe_dump({"data": {"val_fraction": 2}}))
    with pytest.raises(ParamsError, match=f"{bad}: data.val_fraction"):
        load_params(bad)


# --- One source of truth: the schema's defaults are what conf/ composes, and docs/params.md is generated --


def test_conf_composes_exactly_the_schema_defaults() -> None:
    """params.yaml is conf/'s composition (another test holds the two together): with no profile picked,
    every value in it is the schema's default (what an empty params file validates to: the defaults
    pass every relation check), so conf/ cannot drift from codex_ml/params/."""
    composed = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert composed == parse_params(None).model_dump()


def test_conf_model_options_are_named_by_their_registry_names() -> None:
    """`-S model=<name>` and `model.name: <name>` say the same thing: one name per model."""
    from codex_ml.models import MODELS

    for option in sorted((ROOT / "conf/model").glob("*.yaml")):
        if option.stem != "pretrained":
            name = yaml.safe_load(option.read_text())["name"]
            assert option.stem == name and name in MODELS, option


def test_params_doc_is_generated_from_the_schema() -> None:
    from codex_ml.params.doc import markdown

    page = (ROOT / "docs" / "params.md").read_text(encoding="utf-8")
    assert page == markdown(), "docs/params.md is stale: run `make params-doc`"
    schema = page.split("## Rules between keys")[0]
    keys = [line.split("`")[1] for line in schema.splitlines() if line.startswith("| `")]
    assert "train.max_steps" in keys and "eval.humaneval.limit" in keys and len(keys) == len(set(keys))
    profiles = page.split("## Profiles")[1]
    assert "| `model=llama-small` | `model.name: \"llama-small\"` |" in profiles
    assert "`data.near_dedup.enabled: true`" in profiles.split("| `data=dir` |")[1].split("\n")[0]


# A value that breaks each rule between keys that docs/params.md states (codex_ml/params/doc.py RULES).
BREAKS = {
    "data.path": {"data": {"source": "dir", "path": None}},
    "data.revision": {"data": {"revision": "main"}},
    "data.include": {"data": {"include": []}},
    "data.val_fraction + data.test_fraction": {"data": {"val_fraction": 0.6, "test_fraction": 0.5}},
    "data.decontaminate": {"data": {"decontaminate": ["humaneval", "humaneval"]}},
    "data.held_out.near_dup_threshold": {"data": {"held_out": {"near_dup_threshold": 1.5}}},
    "data.slurm.partition": {"data": {"executor": "slurm"}},
    "data.slurm.time": {"data": {"slurm": {"time": " "}}},
    "tokenizer.backend": {"tokenizer": {"backend": "pretrained"}},
    "tokenizer.vocab_size": {"tokenizer": {"vocab_size": 260}},
    "tokenizer.model_type": {"tokenizer": {"model_type": "unigram"}},
    "model.name": {"model": {"name": ""}},
    "model.revision": {"model": {"revision": "main"}},
    "model.lora.target_modules": {"model": {"lora": {"enabled": True, "target_modules": []}}},
    "model.lora.qlora": {"model": {"lora": {"qlora": True}}},
    "train.final_seq_len": {"train": {"final_seq_len": 200}},
    "train.batch_size": {"train": {"batch_size": 15}},
    "train.warmup_steps": {"train": {"warmup_steps": 1200}},
    "train.eval_every": {"train": {"eval_every": 1201}},
    "train.fsdp_cpu_offload": {"train": {"fsdp_cpu_offload": True}},
    "train.parallel": {"train": {"parallel": "fsdp"}, "model": {"lora": {"enabled": True}}},
    "eval.window": {"eval": {"window": 1}},
    "eval.stride": {"eval": {"stride": 512}},
    "eval.completion_max_tokens": {"eval": {"completion_max_tokens": 512}},
    "report.baseline_rev": {"report": {"baseline_rev": " "}},
    "release.license": {"release": {"license": "MIT AND ("}},
}


@pytest.mark.parametrize("key", sorted(BREAKS))
def test_each_documented_rule_between_keys_is_enforced(key: str) -> None:
    with pytest.raises(ParamsError) as err:
        parse_params(merge(Params().model_dump(), BREAKS[key]), source="params.yaml")
    assert str(err.value).startswith(f"params.yaml: {key}: "), str(err.value)


def test_every_rule_a_validator_enforces_is_documented() -> None:
    """The keys the validators name in their errors (codex_ml/params/) are RULES' keys: a new check
    between keys is documented in docs/params.md, and a rule dropped from the code leaves the page."""
    from codex_ml.params.doc import RULES

    source = "\n".join(p.read_text() for p in sorted((ROOT / "codex_ml/params").glob("*.py")))
    key = r"[a-z_]+(?:\.[a-z_]+)+(?: \+ [a-z_.]+)?"  # data.path, data.val_fraction + data.test_fraction
    named = set(re.findall(rf'(?:fail\(|ParamsError\()f?"({key})[:"]', source))
    assert named == set(RULES) == set(BREAKS), (named ^ set(RULES), set(RULES) ^ set(BREAKS))
