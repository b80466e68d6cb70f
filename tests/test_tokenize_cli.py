"""`codex tokenizer train|validate|encode|decode` on real files, stdin and stdout."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from codex_ml.cli import app
from codex_ml.tokenization import load_tokenizer
from tests.conftest import ROOT, run, unboxed
from tests.tokenizekit import held_out_documents

runner = CliRunner()


@pytest.fixture(scope="module")
def tokenizer_dir(stdlib_sample: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "tok"
    files = [str(p) for p in sorted(stdlib_sample.rglob("*.py"))]
    result = runner.invoke(app, ["tokenizer", "train", *files, "--out", str(out), "--vocab-size", "600"])
    assert result.exit_code == 0, result.output
    assert "hf-bpe (bpe), 600 tokens, trained on 40 document(s)" in result.output  # the default backend
    return out


def test_help_explains_every_command() -> None:
    result = runner.invoke(app, ["tokenizer", "--help"])
    assert result.exit_code == 0
    for command in ("train", "validate", "encode", "decode"):
        assert command in result.output
    result = runner.invoke(app, ["tokenizer", "encode", "--help"])
    assert "--tokenizer" in result.output and "stdin" in result.output


def test_encode_file_then_decode_stdin_is_exact(tokenizer_dir: Path, tmp_path: Path) -> None:
    _, text = held_out_documents()[0]
    src = tmp_path / "src.py"
    src.write_text(text + "\r\n\ttabs, CRLF and \u2581 </s> é\n", encoding="utf-8")
    encoded = runner.invoke(app, ["tokenizer", "encode", str(src), "-t", str(tokenizer_dir)])
    assert encoded.exit_code == 0, encoded.output
    ids = [int(i) for i in encoded.stdout.split()]
    assert ids == load_tokenizer(tokenizer_dir).encode(src.read_bytes().decode("utf-8"))  # CRLF kept
    decoded = runner.invoke(app, ["tokenizer", "decode", "-t", str(tokenizer_dir)], input=encoded.stdout)
    assert decoded.exit_code == 0, decoded.output
    assert decoded.stdout_bytes == src.read_bytes()  # byte for byte, no newline added


def test_encode_stdin_json_and_eos_and_output_file(tokenizer_dir: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["tokenizer", "encode", "-t", str(tokenizer_dir), "--format", "json",
                                 "--eos"], input="def f():\n    return 1\n")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["name"] == "<stdin>" and record["ids"][-1] == 2 and record["tokens"][-1] == "</s>"
    assert record["tokens"][:2] == ["def", "\u0120f"]  # AutoTokenizer's spelling: byte-level BPE's space
    out = tmp_path / "ids.txt"
    result = runner.invoke(app, ["tokenizer", "encode", "-t", str(tokenizer_dir), "-", "-o", str(out)],
                           input="x = 1\n")
    assert result.exit_code == 0 and result.stdout == ""
    # decode reads JSON lists and `encode --format json` lines too; EOS decodes to nothing.
    ids_input = json.dumps(record) + "\n" + json.dumps(record["ids"]) + "\n" + out.read_text()
    again = runner.invoke(app, ["tokenizer", "decode", "-t", str(tokenizer_dir), "-"], input=ids_input)
    assert again.exit_code == 0, again.output
    assert again.stdout == "def f():\n    return 1\n" * 2 + "x = 1\n"


def test_validate(tokenizer_dir: Path, stdlib_sample: Path) -> None:
    result = runner.invoke(app, ["tokenizer", "validate", "-t", str(tokenizer_dir)])
    assert result.exit_code == 0, result.output
    assert "round trip: 9/9 exact" in result.output and "AutoTokenizer: 9/9 identical ids" in result.output
    files = [str(p) for p in sorted(stdlib_sample.rglob("*.py"))[:3]]
    result = runner.invoke(app, ["tokenizer", "validate", "-t", str(tokenizer_dir), *files])
    assert result.exit_code == 0 and "3/3 exact" in result.output and result.output.endswith("ok\n")


@pytest.mark.parametrize(("args", "stdin", "message"), [
    (["encode", "-t", "{missing}"], "x", "no such tokenizer folder"),
    (["decode", "-t", "{empty}"], "1", "not a codex tokenizer folder (codex_tokenizer.json is missing)"),
    (["validate", "-t", "{missing}"], None, "no such tokenizer folder"),
    (["decode", "-t", "{tok}"], "5 x 7", "<stdin>:1: 'x' is not a token id (an integer in [0, 600))"),
    (["decode", "-t", "{tok}"], "[1, 600]", "<stdin>:1: 600 is not a token id"),
    (["encode", "-t", "{tok}", "{missing}/a.py"], None, "a.py: no such file"),
    (["train", "--out", "{missing}", "--vocab-size", "100"], "x",
     "tokenizer.vocab_size: expected an integer"),
    (["train", "--out", "{missing}", "--backend", "hf-bpe", "--model-type", "unigram"], "x",
     "tokenizer.model_type: 'unigram' applies to backend sentencepiece only"),
], ids=["missing-folder", "not-a-tokenizer", "validate-missing", "bad-id", "id-out-of-range",
        "missing-input", "vocab-too-small", "unigram-hf"])
def test_errors_are_one_line_and_exit_2(args: list[str], stdin: str | None, message: str,
                                        tokenizer_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    subs = {"{missing}": str(tmp_path / "missing"), "{empty}": str(tmp_path / "empty"),
            "{tok}": str(tokenizer_dir)}
    args = [next((a.replace(k, v) for k, v in subs.items() if k in a), a) for a in args]
    result = runner.invoke(app, ["tokenizer", *args], input=stdin)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("codex tokenizer: error: ")
    assert not (tmp_path / "missing").exists()


@pytest.mark.parametrize(("args", "option", "value"), [
    (["train", "--out", "x", "--backend", "wordpiece"], "--backend", "wordpiece"),
    (["train", "--out", "x", "--backend", "pretrained"], "--backend", "pretrained"),  # nothing to train
    (["encode", "--format", "yaml"], "--format", "yaml"),
])
def test_choices_are_typers(args: list[str], option: str, value: str, tmp_path: Path) -> None:
    """Options with a fixed set of values are Typer's choices: its usage error, exit 2, listing them."""
    result = runner.invoke(app, ["tokenizer", *args])
    said = unboxed(result.stderr)
    assert result.exit_code == 2 and f"Invalid value for '{option}'" in said
    assert f"'{value}' is not one of" in said
    assert not (tmp_path / "x").exists()


def test_installed_command_fails_cleanly(tmp_path: Path) -> None:
    """The real entry point in a real process: exit 2, one line, no traceback."""
    proc = run([sys.executable, "-m", "codex_ml.cli", "tokenizer", "encode", "-t", str(tmp_path / "nope")],
               ROOT, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (f"codex tokenizer: error: {tmp_path / 'nope'}: no such tokenizer folder "
                                   f"(make one with `dvc repro tokenize` or `codex tokenizer train`)")
