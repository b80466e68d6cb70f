"""An S3 remote, for real: DVC's S3 plugin (dvc-s3) against moto's standalone S3 server on 127.0.0.1,
set up with docs/scaling.md's own commands (credentials and endpoint from the environment, as a user
sets them): push, a fresh clone, pull, and `dvc repro` has nothing to do."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import ROOT, new_repo, run

pytestmark = pytest.mark.cluster

BUCKET = "codex-ml-test"


def docs_s3_commands() -> list[str]:
    """The sh block of docs/scaling.md's S3 section, one command a line, `<bucket>` filled in."""
    text = (ROOT / "docs" / "scaling.md").read_text(encoding="utf-8")
    section = text.split("### An S3 bucket", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block, "docs/scaling.md: no sh block under 'An S3 bucket'"
    lines = [line.split("  #", 1)[0].strip() for line in block[1].splitlines()]
    return [line.replace("<bucket>", BUCKET) for line in lines if line and not line.startswith("#")]


def test_push_clone_pull_and_nothing_to_repro_through_s3(s3_env: dict[str, str], stdlib_sample: Path,
                                                         tmp_path: Path) -> None:
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                      aws_access_key_id=s3_env["AWS_ACCESS_KEY_ID"],
                      aws_secret_access_key=s3_env["AWS_SECRET_ACCESS_KEY"])
    s3.create_bucket(Bucket=BUCKET)
    repo = new_repo(tmp_path, {"data": {"source": "dir", "path": str(stdlib_sample)}})
    run(["dvc", "repro", "prepare"], repo)
    commands = docs_s3_commands()
    assert any(c.startswith("dvc push") for c in commands), commands
    for command in commands:
        run(["bash", "-euc", command], repo, **s3_env)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "prepare, S3 remote"], repo)

    listed = s3.list_objects_v2(Bucket=BUCKET)  # the objects are in the bucket, under the remote's prefix
    assert listed["KeyCount"] >= 3 and all(o["Key"].startswith("codex-ml/") for o in listed["Contents"])

    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(repo), str(clone)], tmp_path)
    assert not (clone / "data" / "prepared").exists()
    pulled = run(["dvc", "pull", "prepare"], clone, **s3_env).stdout
    assert re.search(r"\d+ files? (fetched|added)", pulled), pulled
    prepared = sorted((repo / "data/prepared").rglob("*"))
    files = [p.relative_to(repo).as_posix() for p in prepared if p.is_file()]
    assert files and all((clone / f).read_bytes() == (repo / f).read_bytes() for f in files)
    assert (clone / "metrics/prepare.json").read_bytes() == (repo / "metrics/prepare.json").read_bytes()
    status = run(["dvc", "repro", "prepare"], clone, **s3_env).stdout
    assert "Running stage" not in status and "up to date" in status, status
