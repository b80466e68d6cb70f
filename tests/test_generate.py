"""`codex generate` and `codex eval` from the shell, and line completion."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from codex_ml.cli import app
from codex_ml.eval.completion import complete_lines, eligible_lines, is_match, sample_lines
from codex_ml.eval.generate import generate
from codex_ml.eval.model import load_model, load_tokenizer, pick_device
from codex_ml.eval.options import SamplingParams
from codex_ml.runtime import StageError
from codex_ml.shards import iter_prepared
from tests.conftest import unboxed
from tests.evalkit import EOS, PAD, shared_workspace

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def workspace(tmp_path_factory: pytest.TempPathFactory, stdlib_sample: Path) -> Path:
    return shared_workspace(tmp_path_factory, stdlib_sample)


def test_same_seed_same_text_and_the_stream_is_the_text(workspace: Path) -> None:
    model = workspace / "models/model"
    sampling = SamplingParams(max_new_tokens=30, temperature=0.9, top_k=40, top_p=0.9, seed=5)
    streamed = io.StringIO()
    a = generate(model, "def parse_args(", sampling, stream=streamed)
    b = generate(model, "def parse_args(", sampling)
    assert a == b and len(a) > 0
    assert streamed.getvalue() == a
    others = {generate(model, "def parse_args(", SamplingParams(max_new_tokens=30, seed=s)) for s in range(4)}
    assert len(others) > 1  # sampling does sample: different seeds, different text
    greedy = SamplingParams(max_new_tokens=20, temperature=0)
    assert generate(model, "import ", greedy) == generate(model, "import ", greedy)
    # top-k 1 keeps only the most likely token: sampling becomes greedy (so --top-k really applies)
    top1 = SamplingParams(max_new_tokens=20, temperature=1.5, top_k=1, top_p=1.0, seed=9)
    assert generate(model, "import ", top1) == generate(model, "import ", greedy)
    no_cut = SamplingParams(max_new_tokens=20, temperature=1.5, top_k=0, top_p=1.0, seed=9)
    assert generate(model, "import ", no_cut) != generate(model, "import ", greedy)


def test_generate_command_streams_and_a_missing_model_is_one_error(workspace: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    args = ["generate", "--model", str(workspace / "models/model"), "--max-new-tokens", "25", "--seed", "3",
            "def parse_args("]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert first.stdout.startswith("def parse_args(")
    assert runner.invoke(app, args).stdout == first.stdout
    missing = runner.invoke(app, ["generate", "--model", str(tmp_path / "nope"), "x"])
    assert missing.exit_code == 2
    assert missing.stderr.strip() == f"codex generate: error: {tmp_path / 'nope'}: model folder not found"
    assert missing.stdout == ""
    bad = runner.invoke(app, ["generate", "--model", str(workspace / "models/model"), "--top-p", "0", "x"])
    assert bad.exit_code == 2 and "--top-p: expected a number in (0, 1]" in bad.stderr


def test_eval_command(workspace: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(workspace)  # the defaults: data/tokens, data/prepared, models/tokenizer
    out = tmp_path / "m.json"
    result = CliRunner().invoke(app, ["eval", "--model", "models/model", "--split", "test", "--window", "64",
                                      "--bootstrap", "50", "--completion-samples", "4",
                                      "--completion-max-tokens", "16", "--infill-lines", "5",
                                      "--infill-blocks", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "test: bits/byte" in result.stdout and "xz -9e" in result.stdout
    m = json.loads(out.read_text())
    assert set(m) == {"test"} and m["test"]["completion_samples"] == 4
    infill = m["test"]["infill"]  # a model without sentinels: its middles left to right
    assert 0 < infill["line"]["samples"] <= 5 and infill["block"]["samples"] <= 2
    assert infill["line"]["mode"] == "l2r" and "test infilling: line (" in result.stdout
    missing = CliRunner().invoke(app, ["eval", "--model", "nope"])
    assert missing.exit_code == 2
    assert missing.stderr.strip() == "codex eval: error: nope: model folder not found"
    # the choices are Typer's: the same usage error as any other option's, listing the choices
    for option, value, choices in (("--split", "train", "'val', 'test'"),
                                   ("--device", "gpu", "'auto', 'cpu', 'cuda'")):
        bad = CliRunner().invoke(app, ["eval", "--model", "models/model", option, value])
        said = unboxed(bad.stderr)
        assert bad.exit_code == 2 and f"Invalid value for '{option}'" in said, said
        assert f"'{value}' is not one of {choices}" in said, said
    bad = CliRunner().invoke(app, ["eval", "--model", "models/model", "--window", "1"])
    assert bad.exit_code == 2
    assert "eval.window: expected 0 (the model's context) or an integer >= 2" in bad.stderr


def test_line_sampling_is_seeded_and_skips_first_and_blank_lines() -> None:
    text = "first\n\n    second\n   \nthird"
    assert eligible_lines(text) == [(3, 7, "    second"), (5, 22, "third")]
    texts = ["a\nb\nc\nd\n", "x\ny\n", "only\n"]
    a = sample_lines(texts, 3, [1, 2])
    assert a == sample_lines(texts, 3, [1, 2])
    assert all(s.line > 1 and texts[s.doc][s.start:].split("\n")[0] == s.target for s in a)
    assert len(sample_lines(texts, 100, 0)) == 4  # every eligible line, once
    assert is_match("x = 1  ", "x = 1") and not is_match("  x = 1", "x = 1")


def test_batched_greedy_completion_equals_one_at_a_time(workspace: Path) -> None:
    # Left padding must not change what a prompt's completion is.
    model = load_model(workspace / "models/model", pick_device("cpu"))
    tok = load_tokenizer(workspace / "models/model")
    texts = [r["text"] for _, r in iter_prepared(workspace / "data/prepared", "test")]
    samples = sample_lines(texts, 6, 0)
    kw = dict(window=64, max_new_tokens=12, eos_id=EOS, pad_id=PAD, device=pick_device("cpu"))
    batched = complete_lines(model, tok, texts, samples, batch_size=6, **kw)  # type: ignore[arg-type]
    single = complete_lines(model, tok, texts, samples, batch_size=1, **kw)  # type: ignore[arg-type]
    assert batched == single
    assert all("\n" not in c for c in batched)
    with pytest.raises(ValueError, match="max_new_tokens"):
        complete_lines(model, tok, texts, samples, batch_size=1, **{**kw, "max_new_tokens": 64})  # type: ignore[arg-type]


def test_sampling_params_are_checked() -> None:
    with pytest.raises(StageError, match="--temperature"):
        SamplingParams(temperature=-1).check()
    with pytest.raises(StageError, match="--max-new-tokens"):
        SamplingParams(max_new_tokens=0).check()


def test_default_length_follows_a_short_context_and_too_long_is_one_error(workspace: Path) -> None:
    """The default (128 tokens) would not fit a model trained on 64-token windows (the quick profile):
    it follows the window instead; an explicit length that cannot fit is refused."""
    model_dir = workspace / "models/model"
    from codex_ml.eval.model import context_window

    window = context_window(load_model(model_dir, pick_device("cpu")))
    assert window < 2 * 128  # this fixture is trained with a short context
    greedy = SamplingParams(temperature=0)
    tok = load_tokenizer(model_dir, None)
    text = generate(model_dir, "import ", greedy)
    assert 0 < len(tok(text, add_special_tokens=False)["input_ids"]) <= window // 2 + 1
    assert text == generate(model_dir, "import ", SamplingParams(temperature=0, max_new_tokens=window // 2))
    too_long = rf"--max-new-tokens: expected < the model's context window \({window}\)"
    with pytest.raises(StageError, match=too_long):
        generate(model_dir, "import ", SamplingParams(max_new_tokens=window))


def test_generate_with_a_suffix_fills_in_the_middle_where_the_tokenizer_has_sentinels(
        workspace: Path, tmp_path: Path) -> None:
    from tests.pretrainedkit import make_pretrained

    texts = [f"def f{i}(x):\n    return x + {i}\n" for i in range(40)]
    starcoder = make_pretrained("gpt2", texts, tmp_path / "starcoder", fim=True)  # StarCoder's sentinels
    runner = CliRunner()
    (tmp_path / "after.py").write_text("\n    return y\n", encoding="utf-8")
    args = ["generate", "--model", str(starcoder), "--temperature", "0", "--max-new-tokens", "12",
            "def g(x):\n    y ="]
    by_option = runner.invoke(app, [*args, "--suffix", "\n    return y\n"])
    assert by_option.exit_code == 0, by_option.output
    assert by_option.stdout.startswith("def g(x):\n    y =")
    assert by_option.stdout.endswith("\n    return y\n\n")
    by_file = runner.invoke(app, [*args, "--suffix-file", str(tmp_path / "after.py")])
    assert by_file.stdout == by_option.stdout  # the same middle, greedy
    middle = generate(starcoder, "def g(x):\n    y =", SamplingParams(max_new_tokens=12, temperature=0),
                      suffix="\n    return y\n")
    assert by_option.stdout == "def g(x):\n    y =" + middle + "\n    return y\n\n"
    # no sentinels (the workspace's byte tokenizer; a GPT-2 family base): one error, nothing printed
    plain = make_pretrained("gpt2", texts, tmp_path / "gpt2")
    for model in (workspace / "models/model", plain):
        refused = runner.invoke(app, ["generate", "--model", str(model), "--suffix", ")", "f("])
        assert refused.exit_code == 2 and refused.stdout == ""
        assert refused.stderr.startswith(f"codex generate: error: --suffix: {model}: its tokenizer has no "
                                         "fill-in-the-middle sentinel tokens")
    both = runner.invoke(app, [*args, "--suffix", "x", "--suffix-file", str(tmp_path / "after.py")])
    assert both.exit_code == 2 and "--suffix and --suffix-file: one at a time" in both.stderr
