"""What the report reads: where each input is (`Paths`), and readers that tell a missing file (None)
from one that cannot be read (a StageError naming it)."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codex_ml import paths
from codex_ml.runtime import StageError


@dataclass(frozen=True)
class Paths:
    """Where the report reads from, relative to `root` (the pipeline's layout: codex_ml/paths.py)."""

    root: Path = Path(".")
    prepare: Path = paths.PREPARE_METRICS
    tokenize: Path = paths.TOKENIZE_METRICS
    train_metrics: Path = paths.TRAIN_METRICS
    train_plots: Path = paths.TRAIN_PLOTS
    eval_json: Path = paths.EVAL_METRICS
    eval_dir: Path = paths.EVAL_ROWS
    lock: Path = paths.LOCK
    report: Path = paths.REPORT_PAGE
    dataset_card: Path = paths.PREPARED_CARD
    model_card: Path = paths.MODEL_CARD

    def at(self, p: Path) -> Path:
        return self.root / p


def read_json(path: Path) -> Any | None:
    """Parsed JSON, None if the file does not exist; StageError naming the file if it is unreadable."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StageError(f"{path}: cannot read it as JSON: {exc}") from None


def read_ndjson(path: Path) -> list[dict[str, Any]] | None:
    if not path.is_file():
        return None
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise StageError(f"{path}:{n}: not valid JSON: {exc}") from None
    return rows


def read_tsv_series(path: Path, x: str = "step") -> tuple[list[float], list[float]]:
    """(xs, values) of a dvclive TSV (columns: [timestamp,] step, <metric>); `x` is "step" or "time"
    (seconds since the first row, from the millisecond timestamps)."""
    try:
        with open(path, encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f, delimiter="\t"))
    except (OSError, csv.Error) as exc:
        raise StageError(f"{path}: cannot read it as TSV: {exc}") from None
    if not rows:
        return [], []
    value_col = [c for c in rows[0] if c not in ("timestamp", "step")]
    if "step" not in rows[0] or len(value_col) != 1:
        raise StageError(f"{path}: expected a dvclive TSV with columns step and one metric, "
                         f"got {list(rows[0])}")
    if x == "time" and "timestamp" not in rows[0]:
        raise StageError(f"{path}: no timestamp column to plot against time")
    try:
        if x == "time":
            t0 = float(rows[0]["timestamp"])
            xs = [(float(r["timestamp"]) - t0) / 1000.0 for r in rows]
        else:
            xs = [float(r["step"]) for r in rows]
        return xs, [float(r[value_col[0]]) for r in rows]
    except (TypeError, ValueError) as exc:
        raise StageError(f"{path}: a value is not a number: {exc}") from None


def get(obj: Any, *keys: str) -> Any:
    for k in keys:
        if not isinstance(obj, dict) or k not in obj:
            return None
        obj = obj[k]
    return obj
