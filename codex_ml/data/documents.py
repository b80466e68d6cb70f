"""What every source is and yields, and how a source is cut into parts: the types the source readers
(sources.py, hf_source.py) share, one floor below both."""

from __future__ import annotations

from abc import ABC, abstractmethod
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class RawDocument:
    path: str  # relative, POSIX separators: the document's stable identity (the split hashes it)
    data: bytes | None  # None when rejected
    rejected: str | None = None  # reason, when data is None
    license: tuple[str, str] | None = None  # (expression, column) from a dataset's own license column


class Source(ABC):
    """A resolved `data.source`: what it is, for metrics and the report, and its documents."""

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """What the corpus is (metrics/prepare.json's `source`)."""

    def license_root(self) -> Path | None:
        """The folder whose license files and packages give its documents' licenses (a walked folder);
        None for a dataset, whose rows carry theirs (RawDocument.license)."""
        return None

    @abstractmethod
    def documents(self, rank: int = 0, world_size: int = 1) -> Iterator[RawDocument]:
        """The source's documents in its deterministic order; with `world_size` > 1, only those of
        contiguous part `rank`, such that parts 0..world_size-1 concatenated are exactly the whole
        sequence (the same documents and the same rejections)."""


def document_id(value: object, default: str) -> str:
    """A record's identity from its id field's value, or `default` when it has none (null, empty, or
    not a string or an integer)."""
    return str(value) if isinstance(value, (str, int)) and str(value) else default


def part_bounds(weights: Sequence[int], rank: int, world_size: int) -> tuple[int, int]:
    """The items [start, stop) of contiguous part `rank` of `world_size`, cut so that each part holds
    about the same total weight (bytes): item i goes to the part its midpoint falls in. Every part
    makes the same cut, so parts 0..world_size-1 are disjoint, in order, and together hold every item."""
    total = sum(weights)
    if total == 0:
        weights, total = [1] * len(weights), len(weights)
    bounds, before = [], 0
    for w in weights:
        bounds.append(min(world_size - 1, (2 * before + w) * world_size // (2 * total)))
        before += w
    return bisect_left(bounds, rank), bisect_left(bounds, rank + 1)


def check_part(rank: int, world_size: int) -> None:
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"partition: expected 0 <= rank < world_size, got rank {rank} of {world_size}")
