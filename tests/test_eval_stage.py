"""The eval stage on real artifacts in the pipeline's file formats: outputs, determinism, bad inputs."""

from __future__ import annotations

import csv
import json
import math
import re
import shutil
from pathlib import Path

import pytest
import yaml

from codex_ml.eval.stage import EvalInputs, run_eval, write_outputs
from codex_ml.params import EvalParams, InfillParams, ParamsError, parse_params
from codex_ml.runtime import StageError
from codex_ml.shards import SplitIndex, iter_prepared, read_index, write_index
from tests.conftest import ROOT, run, stage_command
from tests.evalkit import NO_INFILL, build_workspace, shared_workspace

pytestmark = pytest.mark.usefixtures("one_thread")

EVAL_KEYS = {"loss", "perplexity", "bits_per_byte", "bits_per_byte_ci", "accuracy",
               "completion_exact_match", "baselines"}
PARAMS = EvalParams(bootstrap=100, completion_samples=8, completion_max_tokens=12, batch_size=16,
                    infill=InfillParams(line=6, block=3, max_new_tokens=8))


@pytest.fixture
def workspace(tmp_path_factory: pytest.TempPathFactory, stdlib_sample: Path) -> Path:
    return shared_workspace(tmp_path_factory, stdlib_sample)


def inputs(ws: Path, **kw: object) -> EvalInputs:
    return EvalInputs(model_dir=ws / "models/model", tokens_dir=ws / "data/tokens",
                      prepared_dir=ws / "data/prepared", tokenizer_dir=ws / "models/tokenizer", **kw)  # type: ignore[arg-type]


def evaluate_to(ws: Path, out: Path, params: EvalParams = PARAMS) -> dict:
    metrics, results, settings = run_eval(params, inputs(ws), train_seq_len=64)
    write_outputs(metrics, results, settings, out / "eval.json", out / "eval")
    return metrics


def test_outputs_follow_the_contract_and_reruns_are_byte_identical(workspace: Path, tmp_path: Path) -> None:
    m = evaluate_to(workspace, tmp_path / "a")
    evaluate_to(workspace, tmp_path / "b")
    files = sorted(str(p.relative_to(tmp_path / "a")) for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert files == [
        "eval.json", "eval/settings.json", "eval/test.csv", "eval/test.ndjson",
        "eval/test_completions.ndjson", "eval/test_infill.ndjson", "eval/val.csv", "eval/val.ndjson",
        "eval/val_completions.ndjson", "eval/val_infill.ndjson"]
    for f in files:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f

    assert set(m) == {"val", "test"}
    meta = json.loads((workspace / "data/tokens/meta.json").read_text())
    for split, sm in m.items():
        assert set(sm) >= EVAL_KEYS
        assert set(sm["baselines"]) == {"gzip_bpb", "xz_bpb", "unigram_bpb"}
        low, high = sm["bits_per_byte_ci"]
        assert low <= sm["bits_per_byte"] <= high
        assert sm["tokens"] == meta["splits"][split]["tokens"]  # every token (and EOS) scored once
        assert sm["bytes"] == meta["splits"][split]["bytes"]
        assert sm["perplexity"] == pytest.approx(math.exp(sm["loss"]))
        # bits per byte and loss are one total NLL, normalised two ways
        assert sm["bits_per_byte"] == pytest.approx(sm["loss"] * sm["tokens"] / math.log(2) / sm["bytes"])
        assert sm["completion_samples"] == 8
        rows = [json.loads(line)
                for line in (tmp_path / "a/eval" / f"{split}.ndjson").read_text().splitlines()]
        index = read_index(workspace / "data/tokens" / f"{split}.index.parquet")
        assert [r["path"] for r in rows] == index.paths
        assert sum(r["tokens"] for r in rows) == sm["tokens"]
        total_bits = sum(r["bits_per_byte"] * r["bytes"] for r in rows)
        assert total_bits / sm["bytes"] == pytest.approx(sm["bits_per_byte"])
        with open(tmp_path / "a/eval" / f"{split}.csv", newline="") as f:
            table = list(csv.DictReader(f))
        assert [r["path"] for r in table] == [r["path"] for r in rows]
        assert list(table[0])[:5] == ["path", "bytes", "tokens", "loss", "bits_per_byte"]
        assert float(table[0]["bits_per_byte"]) == rows[0]["bits_per_byte"]
        comps = [json.loads(line) for line in
                 (tmp_path / "a/eval" / f"{split}_completions.ndjson").read_text().splitlines()]
        assert len(comps) == 8
        assert sum(c["match"] for c in comps) / 8 == sm["completion_exact_match"]
        texts = {r["path"]: r["text"] for _, r in iter_prepared(workspace / "data/prepared", split)}
        for c in comps:
            assert texts[c["path"]].split("\n")[c["line"] - 1] == c["target"]
            assert "\n" not in c["completion"]
            assert 0 <= c["edit_similarity"] <= 1 and c["bits_per_byte"] > 0
        assert sm["completion_edit_similarity"] == pytest.approx(sum(c["edit_similarity"] for c in comps) / 8)
        low, high = sm["completion_line_bpb_ci"]
        assert low <= sm["completion_line_bpb"] <= high
        # infilling: the test model has no FIM sentinels, so its middles are scored left to right only
        spans = [json.loads(line) for line in (tmp_path / "a/eval" / f"{split}_infill.ndjson").read_text()
                 .splitlines()]
        line, block = sm["infill"]["line"], sm["infill"]["block"]
        assert line["mode"] == block["mode"] == "l2r" and "middle_bpb_fim" not in line
        assert len(spans) == line["samples"] + block["samples"] and 0 < line["samples"] <= 6
        assert line["exact_match"] is not None and "exact_match" not in block  # blocks are scored only
        assert [s["lines"] for s in spans if s["kind"] == "line"] == [1] * line["samples"]
        assert sum(s["bits_l2r"] for s in spans if s["kind"] == "line") / \
            sum(s["bytes"] for s in spans if s["kind"] == "line") == pytest.approx(line["middle_bpb_l2r"])
    settings = json.loads((tmp_path / "a/eval/settings.json").read_text())
    assert settings["window"] == 64 and settings["stride"] == 32


def test_a_trained_model_beats_the_untrained_one(workspace: Path, tmp_path: Path,
                                                 stdlib_sample: Path) -> None:
    untrained = build_workspace(tmp_path / "untrained", stdlib_sample, train_steps=0)
    quick = EvalParams(bootstrap=0, completion_samples=0, infill=NO_INFILL)
    trained_m, _, _ = run_eval(quick, inputs(workspace), splits=("val",), train_seq_len=64)
    untrained_m, _, _ = run_eval(quick, inputs(untrained), splits=("val",), train_seq_len=64)
    assert trained_m["val"]["bits_per_byte"] < untrained_m["val"]["bits_per_byte"] - 0.3
    assert trained_m["val"]["bits_per_byte_ci"] is None  # bootstrap 0: no interval, not a made-up one


def test_retokenized_text_gives_the_same_numbers(workspace: Path) -> None:
    # The byte tokenizer encodes the prepared text to exactly the token files' ids.
    quick = EvalParams(bootstrap=50, completion_samples=0, infill=NO_INFILL)
    a, _, _ = run_eval(quick, inputs(workspace), splits=("val",), train_seq_len=64)
    b, _, _ = run_eval(quick, inputs(workspace, retokenize=True), splits=("val",), train_seq_len=64)
    assert a == b


def test_bad_inputs_are_one_clear_error(workspace: Path, tmp_path: Path) -> None:
    quick = EvalParams(bootstrap=0, completion_samples=0, infill=NO_INFILL)
    with pytest.raises(StageError, match="nope: model folder not found"):
        run_eval(quick, EvalInputs(model_dir=tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(StageError, match=re.escape("no config.json")):
        run_eval(quick, EvalInputs(model_dir=tmp_path / "empty"))

    broken = tmp_path / "ws"
    shutil.copytree(workspace, broken)
    meta_path = broken / "data/tokens/meta.json"
    meta = json.loads(meta_path.read_text())
    index_path = broken / "data/tokens/val.index.parquet"
    index = read_index(index_path)
    write_index(index_path, SplitIndex(["renamed.py", *index.paths[1:]], index.bytes, index.tokens))
    with pytest.raises(StageError, match="list different documents"):
        run_eval(quick, inputs(broken), splits=("val",))
    write_index(index_path, index)
    with open(broken / "data/tokens/val-00000.bin", "r+b") as f:  # cut off the last token
        f.truncate(f.seek(0, 2) - 2)
    with pytest.raises(StageError, match=r"val-00000.bin: \d+ bytes, but .*meta.json says"):
        run_eval(quick, inputs(broken), splits=("val",))
    del meta["eos_id"]
    meta_path.write_text(json.dumps(meta))
    stale = "meta.json: not the meta.json this version of codex-ml writes (eos_id: field required)"
    with pytest.raises(StageError, match=re.escape(stale)):
        run_eval(quick, inputs(broken), splits=("val",))
    with pytest.raises(StageError, match=re.escape("eval.window: expected <= the model's 64 positions")):
        run_eval(EvalParams(window=65), inputs(workspace))


def test_stage_script_refuses_bad_params_before_any_work(workspace: Path, tmp_path: Path) -> None:
    # (The stage's successful run under dvc repro: tests/test_pipeline_run.py.)
    ws = tmp_path / "stage"
    shutil.copytree(workspace, ws)
    shutil.rmtree(ws / "metrics")
    (ws / "params.yaml").write_text(yaml.safe_dump({"eval": {"bootstrap": -1}}))
    proc = run(stage_command("eval"), ws, check=False, PYTHONPATH=str(ROOT))
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("codex-ml eval: error: params.yaml: eval.bootstrap: expected an integer "
                                   ">= 0, got -1")
    assert not (ws / "metrics").exists()


def test_token_file_ids_must_fit_the_model(workspace: Path, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    shutil.copytree(workspace, ws)
    meta = json.loads((ws / "data/tokens/meta.json").read_text())
    meta["vocab_size"] = 50_000
    (ws / "data/tokens/meta.json").write_text(json.dumps(meta))
    with pytest.raises(StageError, match="exceeds the model's 264 outputs"):
        run_eval(EvalParams(bootstrap=0, completion_samples=0, infill=NO_INFILL), inputs(ws))


@pytest.mark.parametrize(("section", "raw", "message"), [
    ("eval", {"window": 1}, "eval.window: expected 0 (the model's context) or an integer >= 2, got 1"),
    ("eval", {"window": 64, "stride": 64}, "eval.stride: expected < eval.window (64), got 64"),
    ("eval", {"window": 64, "completion_max_tokens": 64},
     "eval.completion_max_tokens: expected < eval.window (64), got 64"),
    ("eval", {"bootstrap": 1.5}, "eval.bootstrap: expected an integer, got 1.5"),
    ("eval", {"threads": -1}, "eval.threads: expected an integer >= 0 (0 = all cores), got -1"),
    ("eval", {"sample": 3}, "eval.sample: unknown key"),
    ("report", {"baseline_rev": " "}, "report.baseline_rev: expected a git revision"),
    ("report", {"completion_examples": -1}, "report.completion_examples: expected an integer >= 0"),
])
def test_eval_and_report_params_are_checked(section: str, raw: dict, message: str) -> None:
    with pytest.raises(ParamsError, match=re.escape(message)):
        parse_params({section: raw})


def test_stage_with_humaneval_enabled_writes_its_rows_and_metrics(workspace: Path, tmp_path: Path) -> None:
    ws = tmp_path / "stage"
    shutil.copytree(workspace, ws)
    shutil.rmtree(ws / "metrics")
    (ws / "params.yaml").write_text(yaml.safe_dump({
        "train": {"seq_len": 64},
        "eval": {"bootstrap": 50, "completion_samples": 2, "completion_max_tokens": 8, "threads": 1,
                 "humaneval": {"enabled": True, "limit": 3, "max_new_tokens": 16}}}))
    proc = run(stage_command("eval"), ws, PYTHONPATH=str(ROOT))
    assert "humaneval: pass@1 " in proc.stderr
    m = json.loads((ws / "metrics/eval.json").read_text())
    assert set(m) == {"val", "test", "humaneval"}
    he = m["humaneval"]
    assert he["problems"] == 3 and 0 <= he["pass@1"] <= 1 and sum(he["outcomes"].values()) == 3
    assert he["max_new_tokens"] == 16 and "sampled" not in he
    rows = [json.loads(line) for line in (ws / "metrics/eval/humaneval.ndjson").read_text().splitlines()]
    assert [r["task_id"] for r in rows] == ["HumanEval/0", "HumanEval/1", "HumanEval/2"]
    assert sum(r["passed"] for r in rows) == he["passed"] and all(r["kind"] in he["outcomes"] for r in rows)
    with open(ws / "metrics/eval/humaneval.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert [(t["task_id"], t["passed"], t["kind"]) for t in table] == [
        (r["task_id"], str(int(r["passed"])), r["kind"]) for r in rows]
    assert json.loads((ws / "metrics/eval/settings.json").read_text())["humaneval"]["limit"] == 3
    # Error messages stay out of the git-tracked rows: the stage logs them under logs/ (git-ignored).
    assert all("message" not in r and "error_type" in r for r in rows)
    log = ws / "logs/eval/humaneval_messages.ndjson"
    logged = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(x["task_id"], x["kind"]) for x in logged] == [(r["task_id"], r["kind"]) for r in rows]
