"""Numbers as the report shows them: never turn a missing value into a number."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from codex_ml.report.document import Note


def num(v: Any, digits: int | None = None, missing: str = "not reported") -> str:
    """Integers with thousands separators; floats with `digits` decimals (metrics read side by side),
    or 6 significant digits when `digits` is None (anything else: learning rates, throughput); `missing`
    for a value that is not there."""
    if v is None or isinstance(v, bool):
        return missing if v is None else str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        if digits is None:
            return f"{v:.6g}"
        return f"{v:.{digits}f}" if abs(v) >= 10 ** -digits or v == 0 else f"{v:.3e}"
    return str(v)


def percent(v: Any, digits: int = 1, missing: str = "not reported") -> str:
    """A fraction (metrics/tokenize.json's round_trip_exact, ...) as a percentage; `missing` for
    anything that is not a number."""
    return f"{v:.{digits}%}" if isinstance(v, (int, float)) and not isinstance(v, bool) else missing


def diff_value(v: Any) -> str:
    """A value from `dvc metrics/params diff`: numbers as numbers, anything else as JSON (null, "HEAD")."""
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return num(v)
    return json.dumps(v)


def with_ci(v: Any, ci: Any, digits: int = 4) -> str:
    if v is None:
        return "not measured"
    text = num(float(v), digits)
    if isinstance(ci, list) and len(ci) == 2 and all(isinstance(c, (int, float)) for c in ci):
        text += f" [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"
    return text


def flatten(obj: Any, prefix: str = "", sep: str = ".") -> list[tuple[str, Any]]:
    if isinstance(obj, dict):
        out = []
        for k in sorted(obj):
            out += flatten(obj[k], f"{prefix}{sep}{k}" if prefix else str(k), sep)
        return out
    return [(prefix, obj)]


def missing(path: Path, what: str) -> Note:
    return Note(f"{path} not found: {what} not available in this report.")
