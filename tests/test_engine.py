"""The datatrove engine (codex_ml/executors.py): prepare and tokenize as datatrove tasks on its local
executor write the same bytes as the local path, a failing task is one StageError that leaves nothing
behind, and DVC records the same output hashes whichever engine ran."""

from __future__ import annotations

import gzip
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from codex_ml.data.sources import open_source
from codex_ml.params import DataParams, ParamsError, parse_params
from codex_ml.paths import SPLITS
from codex_ml.runtime import StageError
from codex_ml.shards import write_prepared
from codex_ml.tokenization.stage import tokenize
from tests.conftest import ROOT, run
from tests.preparekit import planted_corpus, run_prepare
from tests.tokenizekit import folder_bytes, sample_documents, small_params, split_sample


def run_tokenize(prepared: Path, out: Path, **overrides: Any) -> dict[str, bytes]:
    params = small_params("sentencepiece").model_copy(update=overrides)
    tokenize(params, prepared, out / "tokenizer", out / "tokens", out / "tokenize.json")
    return {"tokenize.json": (out / "tokenize.json").read_bytes(),
            **{f"tokenizer/{k}": v for k, v in folder_bytes(out / "tokenizer").items()},
            **{f"tokens/{k}": v for k, v in folder_bytes(out / "tokens").items()}}


def test_prepare_as_datatrove_tasks_writes_the_local_bytes(tmp_path: Path, stdlib_sample: Path) -> None:
    # Rejections, an exact duplicate later in the walk than its original (so in a later task), secrets.
    corpus = planted_corpus(tmp_path, stdlib_sample)
    data = {"source": "dir", "path": str(corpus), "max_file_bytes": 100_000, "val_fraction": 0.1,
            "test_fraction": 0.1}
    parts = [[d.path for d in open_source(DataParams(**data)).documents(r, 3)] for r in range(3)]
    assert [i for i, part in enumerate(parts) if "bad/copy_of_heapq.py" in part] != \
        [i for i, part in enumerate(parts) if "heapq.py" in part]  # the duplicate is another task's
    local = run_prepare(tmp_path / "local", workers=1, **data)
    tasks = run_prepare(tmp_path / "datatrove", engine="datatrove", tasks=3, workers=2, **data)
    assert tasks == local
    metrics = json.loads(local["prepare.json"])
    assert metrics["duplicates"] == 1 and sum(metrics["rejected"].values()) > 5
    # Nothing else beside the outputs: the work folder and datatrove's logs went with the temporary folder.
    assert sorted(p.name for p in (tmp_path / "datatrove").iterdir()) == ["prepare.json", "prepared"]


def test_tokenize_as_datatrove_tasks_writes_the_local_bytes(tmp_path: Path, stdlib_sample: Path) -> None:
    prepared = tmp_path / "prepared"
    for split, docs in split_sample(sample_documents(stdlib_sample)).items():  # several shards a split
        write_prepared(prepared, split, ({"path": p, "text": t} for p, t in docs), max_bytes=150_000)
    assert len(list(prepared.glob("train-*.jsonl"))) >= 4
    local = run_tokenize(prepared, tmp_path / "local")
    tasks = run_tokenize(prepared, tmp_path / "datatrove", engine="datatrove")
    assert tasks == local
    assert sorted(p.name for p in (tmp_path / "datatrove").iterdir()) == ["tokenize.json", "tokenizer",
                                                                          "tokens"]


def test_a_failing_prepare_task_is_one_stage_error_and_leaves_nothing(tmp_path: Path) -> None:
    text = "".join(json.dumps({"path": f"m{i}.py", "text": f"x = {i}\n" * 50}) + "\n" for i in range(200))
    packed = gzip.compress(text.encode())
    corpus = tmp_path / "corpus.jsonl.gz"
    corpus.write_bytes(packed[:len(packed) // 2])  # truncated: the task reading it fails
    out = tmp_path / "out"
    with pytest.raises(StageError, match=f"data.path: cannot read {corpus}"):
        run_prepare(out, source="jsonl", path=str(corpus), engine="datatrove", tasks=3, workers=2)
    assert list(out.iterdir()) == []  # no shards, no metrics, no temporary or work folder


def test_a_failing_tokenize_task_is_one_stage_error_and_leaves_nothing(tmp_path: Path,
                                                                       stdlib_sample: Path) -> None:
    prepared = tmp_path / "prepared"
    for split, docs in split_sample(sample_documents(stdlib_sample)).items():
        write_prepared(prepared, split, ({"path": p, "text": t} for p, t in docs))
    with open(prepared / "val-00000.jsonl", "a", encoding="utf-8") as f:
        f.write("{not json\n")
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(StageError, match=r"val-00000\.jsonl:\d+: not valid JSON"):
        run_tokenize(prepared, out, engine="datatrove")
    assert list(out.iterdir()) == []


def test_an_executor_that_cannot_run_here_is_one_error_naming_the_param(
        tmp_path: Path, stdlib_sample: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # ray and Slurm's clients are installed here (the tests run them); take them away as a machine
    # without them would be: no ray package to import, no sbatch or squeue on PATH.
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(StageError, match=r"data\.executor: 'ray' needs the ray package.*pip install"):
        run_prepare(tmp_path, source="dir", path=str(stdlib_sample), engine="datatrove", executor="ray")
    monkeypatch.setenv("PATH", str(tmp_path / "no-slurm-here"))
    with pytest.raises(StageError, match=r"data\.executor: 'slurm' needs Slurm's sbatch and squeue"):
        run_prepare(tmp_path, source="dir", path=str(stdlib_sample), engine="datatrove",
                    executor="slurm", slurm={"partition": "cpu"})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("data", "message"), [
    ({"executor": "slurm"}, "data.slurm.partition: required when data.executor is 'slurm'"),
    ({"executor": "kubernetes"}, "data.executor: expected one of local, slurm, ray, got 'kubernetes'"),
    ({"slurm": {"cpus_per_task": 0}}, "data.slurm.cpus_per_task: expected an integer >= 1, got 0"),
    ({"ray": {"nodes": 2}}, "data.ray.nodes: unknown key"),
])
def test_executor_params_are_checked(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ParamsError, match=message.replace(".", r"\.")):
        parse_params({"data": data}, "params.yaml")


def test_the_stages_depend_on_the_engine_code_and_executor_params() -> None:
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for stage, package in (("prepare", "codex_ml/data"), ("tokenize", "codex_ml/tokenization")):
        assert {"codex_ml/executors.py", package} <= set(stages[stage]["deps"])  # package: its tasks module
    assert {"data.executor", "data.slurm", "data.ray"} <= set(stages["tokenize"]["params"])


@pytest.mark.slow
def test_dvc_records_the_same_outputs_for_either_engine(stdlib_sample: Path,
                                                         make_repo: Callable[..., Path]) -> None:
    repo = make_repo({"data": {"source": "dir", "path": str(stdlib_sample), "val_fraction": 0.15,
                               "test_fraction": 0.15},
                      "tokenizer": {"vocab_size": 600}})

    def outs() -> dict[str, str]:
        lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
        return {o["path"]: o["md5"] for s in ("prepare", "tokenize") for o in lock[s]["outs"]}

    run(["dvc", "repro", "tokenize"], repo)
    local = outs()
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["data"].update(engine="datatrove", tasks=3, workers=2)
    params["tokenizer"]["engine"] = "datatrove"
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    ran = run(["dvc", "repro", "tokenize"], repo).stdout
    assert "Running stage 'prepare'" in ran and "Running stage 'tokenize'" in ran
    assert outs() == local
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    assert lock["prepare"]["params"]["params.yaml"]["data"]["engine"] == "datatrove"
    assert lock["prepare"]["params"]["params.yaml"]["data"]["tasks"] == 3
    assert set(SPLITS) <= {p.name.split("-")[0] for p in (repo / "data" / "tokens").glob("*.bin")}
