"""data.quality: the code-quality filters of code datasets, on real files, counted per reason."""

from __future__ import annotations

import json
import shutil
import sysconfig
from pathlib import Path
from typing import Any

import pytest

from codex_ml.data.filters import QUALITY_REASONS, REJECT_REASONS, data_line_fraction, quality_reason
from codex_ml.data.stage import prepare
from codex_ml.params import DataParams, ParamsError, QualityParams
from codex_ml.shards import iter_prepared

STDLIB = Path(sysconfig.get_paths()["stdlib"])
CODE = ["bisect.py", "colorsys.py", "heapq.py", "shlex.py", "fnmatch.py", "textwrap.py"]


def reason(text: str) -> str | None:
    q = QualityParams(enabled=True)
    return quality_reason(text, q.max_line_length, q.mean_line_length, q.min_alphanumeric_fraction,
                          q.max_data_fraction)


def minified(text: str) -> str:
    """A module's statements on one line, as a minifier writes them (`;`-joined simple statements)."""
    return "; ".join(line.strip() for line in text.splitlines()
                     if line.strip() and not line.startswith((" ", "#", "def", "class", '"""')))


def test_each_filter_on_what_it_is_for() -> None:
    for name in CODE:  # ordinary code passes every filter
        assert reason((STDLIB / name).read_text()) is None, name
    assert reason((STDLIB / "html/entities.py").read_text()) == "data_file"  # a 2,000-row dict literal
    assert data_line_fraction((STDLIB / "html/entities.py").read_text().splitlines()) > 0.95
    assert reason(minified((STDLIB / "heapq.py").read_text()) + "\n") == "max_line_length"
    assert reason("\n".join(["x = " + "'" + "a" * 150 + "'"] * 3)) == "mean_line_length"
    assert reason("#" * 40 + "\n" + "# " + "-=" * 20 + "\nx = 1\n") == "alphanumeric_fraction"
    assert reason("") is None
    assert set(QUALITY_REASONS) <= set(REJECT_REASONS)


def test_data_lines_are_literals_and_separators_only() -> None:
    data = ['    "thumbs_up": "\\U0001f44d",', "    0x00: 0x0000,  # NULL", "    (1, 2.5e-3, -7),",
            "    b'\\x00\\xff',"]
    code = ["x = compute(1, 2)", "    return 'done'", '"""', "    ),", "if a: b()"]
    assert data_line_fraction(data) == 1.0
    assert data_line_fraction(code) == 0.0
    assert data_line_fraction(data + code + ["", "   "]) == pytest.approx(4 / 9)


def test_prepare_drops_a_data_table_and_a_minified_file_and_counts_each(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    (corpus / "pkg").mkdir(parents=True)
    for name in CODE:
        shutil.copyfile(STDLIB / name, corpus / "pkg" / name)
    shutil.copyfile(STDLIB / "html/entities.py", corpus / "pkg/_entities.py")
    (corpus / "pkg/heapq_min.py").write_text(minified((STDLIB / "heapq.py").read_text()) + "\n")

    def run(enabled: bool, out: str) -> tuple[dict, set[str]]:
        params = DataParams(source="dir", path=str(corpus), val_fraction=0.0, test_fraction=0.0,
                            quality=QualityParams(enabled=enabled))
        metrics = prepare(params, tmp_path / out, tmp_path / f"{out}.json")
        assert json.loads((tmp_path / f"{out}.json").read_text()) == metrics
        return metrics, {r["path"] for _, r in iter_prepared(tmp_path / out, "train")}

    metrics, kept = run(True, "on")
    assert metrics["quality"] is True
    assert metrics["rejected"]["data_file"] == 1 and metrics["rejected"]["max_line_length"] == 1
    assert metrics["rejected"]["mean_line_length"] == metrics["rejected"]["alphanumeric_fraction"] == 0
    assert kept == {f"pkg/{name}" for name in CODE}

    metrics, kept = run(False, "off")  # off: the same corpus, nothing dropped for quality
    assert metrics["quality"] is False
    assert all(metrics["rejected"][r] == 0 for r in QUALITY_REASONS)
    assert kept == {f"pkg/{name}" for name in CODE} | {"pkg/_entities.py", "pkg/heapq_min.py"}


@pytest.mark.parametrize(("key", "value"), [("max_line_length", 0), ("mean_line_length", 0.0),
                                            ("min_alphanumeric_fraction", 1.5), ("max_data_fraction", -0.1)])
def test_bad_thresholds_name_the_key(key: str, value: Any) -> None:
    with pytest.raises(ParamsError, match=f"data.quality.{key}: expected"):
        DataParams(quality=QualityParams(**{key: value})).check()
