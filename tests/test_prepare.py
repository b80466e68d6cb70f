"""The prepare stage: sources, filters, redaction, dedup, the stable split, determinism."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codex_ml.data.filters import reject_reason
from codex_ml.data.prepare import prepare, split_of
from codex_ml.data.secrets import KINDS, redact
from codex_ml.data.sources import glob_to_regex, iter_documents, stdlib_root
from codex_ml.params import DataParams

# One planted example of every secret kind, as it would appear in real code or config: (line, secret).
PLANTED_SECRETS = {
    "aws_key": ("AWS_ACCESS_KEY_ID = AKIAIOSFODNN7EXAMPLE\n", "AKIAIOSFODNN7EXAMPLE"),
    "github_token": ("token: ghp_16C7e42F292c6912E7710c838347Ae178B4a\n",
                     "ghp_16C7e42F292c6912E7710c838347Ae178B4a"),
    "gitlab_token": ('GITLAB = "glpat-xYz12345678901234567"\n', "glpat-xYz12345678901234567"),
    "slack_token": ('hook = "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOp"\n',
                    "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOp"),
    "private_key": ("-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA7\nQ1w2e3r4\n"
                    "-----END RSA PRIVATE KEY-----\n", "MIIEpAIBAAKCAQEA7"),
    "jwt": ("auth = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
            "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U'\n", "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"),
    "password": ('db_password = "hunter2hunter2"\n', "hunter2hunter2"),
    "email": ("# maintained by jane.doe+code@example.co.uk\n", "jane.doe+code@example.co.uk"),
}
PLANTED = {kind: line for kind, (line, _) in PLANTED_SECRETS.items()}


def test_every_kind_is_planted() -> None:
    assert set(PLANTED) == set(KINDS)


@pytest.mark.parametrize("kind", sorted(PLANTED))
def test_each_secret_kind_is_redacted_and_counted(kind: str) -> None:
    text, counts = redact("x = 1\n" + PLANTED[kind] + "y = 2\n")
    placeholder = "<EMAIL>" if kind == "email" else f"<SECRET:{kind}>"
    assert placeholder in text
    assert dict(counts) == {kind: 1}
    assert text.startswith("x = 1\n") and text.endswith("y = 2\n")


def test_assignment_keeps_the_name_and_quotes() -> None:
    text, _ = redact('api_key = "sk_live_4eC39HqLyjWDarjtT1zdp7dc"\n')
    assert text == 'api_key = "<SECRET:password>"\n'
    text, _ = redact('{"password": "correct-horse-battery"}')
    assert text == '{"password": "<SECRET:password>"}'


@pytest.mark.parametrize(
    "code",
    [
        "password = input('Password: ')\n",  # not a literal
        'password = ""\n',  # empty
        'PASSWORD_PROMPT = "Enter %s password"\n',  # format syntax, spaces
        "@functools.lru_cache(maxsize=None)\ndef f(): pass\n",  # decorator is not an e-mail
        "y = a@b.T\n",  # matrix multiply
        "self.assertEqual(name@domain, 3)\n",
        "token = tokenize.generate_tokens(readline)\n",
    ],
)
def test_ordinary_code_is_not_mangled(code: str) -> None:
    assert redact(code) == (code, {})


def test_stdlib_code_without_secrets_is_unchanged() -> None:
    root = stdlib_root()
    for name in ("dataclasses.py", "functools.py", "tokenize.py", "json/decoder.py", "argparse.py"):
        text = (root / name).read_text(encoding="utf-8")
        redacted, counts = redact(text)
        emails = counts.pop("email", 0)
        assert not counts, f"{name}: unexpected redactions {counts}"
        assert redacted.count("<EMAIL>") == emails  # the only change is author addresses


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (b"  \n\t\n", "empty"),
        (b"print('hi')\x00\x00", "binary"),
        (bytes(range(1, 9)) * 20 + b"text", "binary"),
        (b"caf\xe9 = 1\n", "invalid_utf8"),
        (b"x = '\xc3\xa9'\n\x0c\n", None),  # UTF-8 and a form feed: ordinary source
    ],
)
def test_content_filters(data: bytes, reason: str | None) -> None:
    assert reject_reason(data) == reason


@pytest.mark.parametrize(
    ("pattern", "path", "ok"),
    [
        ("**/*.py", "a.py", True),
        ("**/*.py", "pkg/sub/a.py", True),
        ("**/*.py", "a.pyc", False),
        ("*.py", "pkg/a.py", False),
        ("pkg/**", "pkg/x/y.txt", True),
        ("src/[ab]?.py", "src/a1.py", True),
        ("src/[!ab]?.py", "src/a1.py", False),
    ],
)
def test_globs(pattern: str, path: str, ok: bool) -> None:
    assert bool(glob_to_regex(pattern).match(path)) is ok


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=30), min_size=2, max_size=50, unique=True))
def test_split_depends_on_the_path_alone(paths: list[str]) -> None:
    """Adding or removing documents never moves another document between splits."""
    full = {p: split_of(p, 0.2, 0.2) for p in paths}
    half = {p: split_of(p, 0.2, 0.2) for p in paths[: len(paths) // 2]}
    assert all(full[p] == s for p, s in half.items())


def test_split_fractions_are_respected() -> None:
    paths = [f"pkg/module_{i}.py" for i in range(20000)]
    splits = [split_of(p, 0.1, 0.05) for p in paths]
    assert abs(splits.count("val") / len(paths) - 0.1) < 0.01
    assert abs(splits.count("test") / len(paths) - 0.05) < 0.01


def _read(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


def test_default_corpus_twice_is_byte_identical(tmp_path: Path) -> None:
    """The stdlib default: the 4 invalid UTF-8 files are rejected, and two runs are identical."""
    params = DataParams()
    m1 = prepare(params, tmp_path / "a", tmp_path / "a.json")
    m2 = prepare(params, tmp_path / "b", tmp_path / "b.json")
    assert _read(tmp_path / "a") == _read(tmp_path / "b")
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    assert m1 == m2
    assert m1["rejected"]["invalid_utf8"] == 4
    assert m1["documents"]["train"] > 1000 and m1["documents"]["val"] > 10 and m1["documents"]["test"] > 10
    assert sum(m1["bytes"].values()) > 20_000_000
    train_paths = [json.loads(x)["path"] for x in (tmp_path / "a" / "train.jsonl").open()]
    assert not [p for p in train_paths if p.startswith(("site-packages/", "dist-packages/"))]
    accounted = sum(m1["documents"].values()) + sum(m1["rejected"].values()) + m1["duplicates"]
    assert accounted == m1["files_seen"]
    rows = [json.loads(line) for line in (tmp_path / "a" / "val.jsonl").read_text().splitlines()]
    assert [r["path"] for r in rows] == sorted(r["path"] for r in rows)
    assert set(rows[0]) == {"path", "text", "sha256", "bytes"}
    assert all(r["bytes"] == len(r["text"].encode()) for r in rows)


def test_jsonl_source_warns_with_line_numbers(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    src = tmp_path / "corpus.jsonl"
    src.write_text(
        json.dumps({"path": "a.py", "text": "def a():\n    return 1\n"}) + "\n"
        + "{not json\n"
        + json.dumps({"body": "no text field"}) + "\n"
        + "\n"
        + json.dumps({"text": "x = 2\n"}) + "\n"
        + json.dumps({"path": "dup.py", "text": "def a():\n    return 1\n"}) + "\n"
    )
    params = DataParams(source="jsonl", path=str(src), val_fraction=0.0, test_fraction=0.0)
    with caplog.at_level(logging.WARNING):
        m = prepare(params, tmp_path / "out", tmp_path / "m.json")
    assert m["rejected"]["malformed_jsonl"] == 2
    assert m["duplicates"] == 1
    assert m["documents"] == {"train": 2, "val": 0, "test": 0}
    assert "line 2" in caplog.text and "line 3" in caplog.text
    paths = [json.loads(x)["path"] for x in (tmp_path / "out" / "train.jsonl").read_text().splitlines()]
    assert paths == ["a.py", "corpus.jsonl:5"]


def test_symlinks_that_leave_the_root_or_loop_are_rejected(tmp_path: Path) -> None:
    outside = tmp_path / "outside.py"
    outside.write_text("secret = 1\n")
    root = tmp_path / "root"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "a.py").write_text("a = 1\n")
    os.symlink(outside, root / "escape.py")
    os.symlink(root / "pkg", root / "pkg" / "again")  # a directory loop
    os.symlink(root / "loop1.py", root / "loop2.py")
    os.symlink(root / "loop2.py", root / "loop1.py")
    os.symlink(root / "pkg" / "a.py", root / "inside.py")  # stays inside: followed
    docs = list(iter_documents(DataParams(source="dir", path=str(root))))
    by_path = {d.path: d.rejected for d in docs}
    assert by_path["escape.py"] == "symlink_outside_root"
    assert by_path["pkg/again"] == "symlink_loop"
    assert by_path["loop1.py"] == by_path["loop2.py"] == "symlink_loop"
    assert by_path["inside.py"] is None and by_path["pkg/a.py"] is None
