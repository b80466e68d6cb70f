"""Params validation: every bad value stops with one message that names the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from codex_ml.params import Params, ParamsError, load_params, parse_params

ROOT = Path(__file__).resolve().parent.parent


def test_project_params_yaml_is_valid_and_matches_defaults_where_documented() -> None:
    params = load_params(ROOT / "params.yaml")
    assert params.data.source == "stdlib"
    assert params.data.include == ["**/*.py"]


def test_defaults_validate() -> None:
    assert parse_params({}) == Params()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"data": {"sauce": "stdlib"}}, "data.sauce: unknown key"),
        ({"dataa": {}}, "dataa: unknown key"),
        ({"data": {"source": "web"}}, "data.source: expected one of stdlib, dir, jsonl, got 'web'"),
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
        ({"data": "stdlib"}, "data: expected a mapping of DataParams keys"),
    ],
)
def test_bad_params_name_the_key(raw: dict, message: str) -> None:
    with pytest.raises(ParamsError) as err:
        parse_params(raw, "params.yaml")
    assert str(err.value).startswith("params.yaml: ")
    assert message in str(err.value)


def test_ints_are_accepted_where_numbers_are_expected() -> None:
    assert parse_params({"data": {"val_fraction": 0}}).data.val_fraction == 0.0


def test_load_params_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ParamsError, match="params file not found"):
        load_params(tmp_path / "missing.yaml")
    bad = tmp_path / "params.yaml"
    bad.write_text("data: [unclosed\n")
    with pytest.raises(ParamsError, match=f"{bad}: not valid YAML"):
        load_params(bad)
    bad.write_text(yaml.safe_dump({"data": {"val_fraction": 2}}))
    with pytest.raises(ParamsError, match=f"{bad}: data.val_fraction"):
        load_params(bad)
