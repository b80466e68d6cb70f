"""What a person sees from a shell: a stage started by a Python without the project installed, and the
summary `make repro` ends with."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from codex_ml.report.stage import Paths
from codex_ml.report.summary import summary_lines
from tests.conftest import ROOT, VENV_BIN, run

STAGES = sorted(p.stem for p in (ROOT / "stages").glob("*.py") if p.stem != "__init__")


def bare_python() -> str:
    """The interpreter this venv was made from: it has no codex_ml (as a system `python` would)."""
    base = Path(sys.base_prefix) / "bin" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
    if not base.is_file():
        pytest.skip(f"no base interpreter at {base}")
    return str(base)


@pytest.mark.parametrize("stage", STAGES)
def test_stage_without_the_project_installed_says_what_to_do_in_one_line(stage: str, tmp_path: Path) -> None:
    python = bare_python()
    bare = subprocess.run([python, "-c", "import codex_ml"], cwd=tmp_path, capture_output=True)
    assert bare.returncode != 0
    shutil.copytree(ROOT / "stages", tmp_path / "stages", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copyfile(ROOT / "params.yaml", tmp_path / "params.yaml")
    proc = subprocess.run([python, "-m", f"stages.{stage}"], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "source .venv/bin/activate" in lines[0] and python in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml", "stages"]  # nothing written


def test_stages_tokenize_leaves_the_standard_librarys_tokenize_alone(tmp_path: Path) -> None:
    """`python -m stages.tokenize` puts the working folder on sys.path, not stages/: once the stage
    module has run (as dvc.yaml runs it), `import tokenize` is still the standard library's, which
    inspect and linecache (and so torch and transformers) rely on."""
    probe = ("import sys, sysconfig\n"
             "import stages.tokenize as stage\n"  # the stage module, with everything it imports
             "import tokenize\n"
             "assert hasattr(tokenize, 'generate_tokens'), tokenize\n"
             "assert tokenize.__file__.startswith(sysconfig.get_paths()['stdlib']), tokenize.__file__\n"
             "assert not any(p.rstrip('/').endswith('stages') for p in sys.path), sys.path\n"
             "print(stage.__file__)\n")
    proc = run([str(VENV_BIN / "python"), "-c", probe], ROOT)
    assert proc.stdout.strip() == str(ROOT / "stages" / "tokenize.py")
    # and run as dvc.yaml runs it, the stage gets as far as its params (none here): one line, exit 2
    bad = run([str(VENV_BIN / "python"), "-m", "stages.tokenize"], tmp_path, check=False,
              PYTHONPATH=str(ROOT))
    assert bad.returncode == 2 and bad.stderr.strip() == (
        "codex-ml tokenize: error: params.yaml: params file not found"), bad.stderr


def test_summary_of_a_real_run_fits_a_screen(tmp_path: Path) -> None:
    """The committed metrics are a real default run: the summary shows its numbers, in <= 15 lines."""
    shutil.copytree(ROOT / "metrics", tmp_path / "metrics")
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports/report.html").write_text("<html></html>")
    out = run([str(VENV_BIN / "codex"), "summary", "--elapsed", "439"], tmp_path).stdout
    lines = out.splitlines()
    assert len(lines) <= 15, out
    ev = json.loads((ROOT / "metrics/eval.json").read_text())
    for split in ("val", "test"):
        m = ev[split]
        row = next(line for line in lines if line.split()[:1] == [split])
        lo, hi = m["bits_per_byte_ci"]
        assert f"{m['bits_per_byte']:.3f} [{lo:.3f}, {hi:.3f}]" in row
        for key in ("xz_bpb", "gzip_bpb", "unigram_bpb"):
            assert f"{m['baselines'][key]:.3f}" in row
        assert f"{100 * m['completion_exact_match']:.1f}%" in row
    train = json.loads((ROOT / "metrics/train/metrics.json").read_text())
    assert f"{train['step']:,} steps" in out
    assert "reports/report.html" in out and "7 min 19 s" in out
    assert "MFU" not in out  # a CPU run: no peak, no MFU


def test_summary_shows_mfu_where_the_run_logged_it(tmp_path: Path) -> None:
    (tmp_path / "metrics/train").mkdir(parents=True)
    (tmp_path / "metrics/train/metrics.json").write_text(json.dumps({
        "step": 1000, "model": {"parameters": 29_600_000},
        "train": {"tokens_seen": 65_536_000, "wall_time_s": 100.0, "mfu_median": 0.4123,
                  "mfu_peak_tflops": 989.5},
    }))
    line = next(x for x in summary_lines(Paths(root=tmp_path)) if x.startswith("train"))
    assert "655,360 tokens/s (41.2% MFU)" in line


def test_summary_before_any_run_says_what_is_missing(tmp_path: Path) -> None:
    out = run([str(VENV_BIN / "codex"), "summary"], tmp_path).stdout
    assert "prepare has not run" in out and "train has not run" in out and "eval has not run" in out
    assert not any(ch.isdigit() for line in out.splitlines()[1:] for ch in line.split("no ", 1)[0]), out


def test_summary_flags_a_split_too_wide_to_rank_and_names_the_shipped_step(tmp_path: Path) -> None:
    (tmp_path / "metrics/train").mkdir(parents=True)
    (tmp_path / "metrics/train/metrics.json").write_text(json.dumps({
        "step": 400, "model": {"parameters": 1_400_000}, "val": {"loss": 7.26, "shipped_loss": 5.61},
        "train": {"tokens_seen": 819_200, "wall_time_s": 100.0, "passes": 3.97, "shipped_step": 300},
    }))
    split = {"bits_per_byte": 4.67, "baselines": {"xz_bpb": 1.27, "gzip_bpb": 1.5, "unigram_bpb": 4.0},
             "completion_exact_match": 0.1}
    (tmp_path / "metrics/eval.json").write_text(json.dumps({
        "val": {**split, "bits_per_byte_ci": [1.20, 5.31], "bits_per_byte_ci_too_wide": True},
        "test": {**split, "bits_per_byte_ci": [1.30, 1.36], "bits_per_byte_ci_too_wide": False},
    }))
    lines = summary_lines(Paths(root=tmp_path))
    train = next(x for x in lines if x.startswith("train"))
    assert "400 steps (3.97 passes)" in train
    assert "val loss 5.610 nats/token at step 300, the model shipped" in train
    wide = [x for x in lines if "too wide to rank models" in x]
    assert len(wide) == 1 and wide[0].split()[0] == "val:"


def test_summary_names_the_cards_the_run_wrote(tmp_path: Path) -> None:
    assert "cards   not written yet" in summary_lines(Paths(root=tmp_path))
    (tmp_path / "data/prepared").mkdir(parents=True)
    (tmp_path / "data/prepared/README.md").write_text("---\nlicense: mit\n---\n")
    assert "cards   data/prepared/README.md (dataset)" in summary_lines(Paths(root=tmp_path))
    (tmp_path / "models/model").mkdir(parents=True)
    (tmp_path / "models/model/README.md").write_text("---\nlicense: other\n---\n")
    assert ("cards   data/prepared/README.md (dataset), models/model/README.md (model)"
            in summary_lines(Paths(root=tmp_path)))
