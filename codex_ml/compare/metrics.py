"""What `codex compare` compares: one entry per kind of per-row file that eval writes in metrics/eval/.

Each entry says where its rows are, what identifies a row in both runs, what must be equal for two
rows to be the same item (a document's byte count, a sampled line's text), which rows form one
resampling unit (a document: rows of one file are correlated), and the metric as a ratio over units,
sum(numer) / sum(denom). The comparison itself (pairing.py, stats/paired.py) knows nothing else, so a
new eval output, such as infilling's per-span rows, plugs in as one more entry in METRICS.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from codex_ml.paths import HELD_OUT

Row = dict[str, Any]


@dataclass(frozen=True)
class Metric:
    name: str  # as printed: "bits per byte"
    file: str  # under metrics/eval/, "{split}" filled in per split
    item: tuple[str, ...]  # the fields that identify a row in both runs
    same: tuple[str, ...]  # fields that must be equal for two rows to be the same item
    unit: str  # the field whose value groups rows into one resampling unit
    numer: Callable[[Row], float]
    denom: Callable[[Row], float]
    lower_is_better: bool
    units: str = "documents"  # what a unit is called
    splits: tuple[str, ...] = HELD_OUT  # () for a file without splits
    headline: bool = False  # must be there and pair, else compare refuses; the others are skipped with a note
    digits: int = 4

    def files(self) -> list[tuple[str, str]]:
        """(split or "", file name) for each split this metric has."""
        if not self.splits:
            return [("", self.file)]
        return [(s, self.file.format(split=s)) for s in self.splits]

    def per_unit(self, row: Row) -> str:
        return str(row[self.unit])


def _bits(row: Row) -> float:
    """Bits of the document: bits per byte times bytes (eval's own quotient, undone)."""
    return float(row["bits_per_byte"]) * float(row["bytes"])


METRICS: tuple[Metric, ...] = (
    # eval's headline: byte-weighted bits per byte, the documents as eval scored them
    Metric("bits per byte", "{split}.ndjson", item=("path",), same=("bytes",), unit="path",
           numer=_bits, denom=lambda r: float(r["bytes"]), lower_is_better=True, headline=True),
    # the sampled lines of line completion: the same lines when the documents and eval.seed agree
    Metric("line exact match", "{split}_completions.ndjson", item=("path", "line"), same=("target",),
           unit="path", numer=lambda r: float(bool(r["match"])), denom=lambda r: 1.0,
           lower_is_better=False, digits=3),
    Metric("HumanEval pass@1", "humaneval.ndjson", item=("task_id",), same=(), unit="task_id",
           numer=lambda r: float(bool(r["passed"])), denom=lambda r: 1.0, lower_is_better=False,
           units="problems", splits=(), digits=3),
)
