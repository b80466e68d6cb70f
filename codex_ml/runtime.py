"""What every stage script shares: the error boundary, progress bars, logging set-up, how many cores a
worker or thread count means, and handing freed memory back to the OS."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from tqdm import tqdm

from codex_ml.params import ParamsError

T = TypeVar("T")

log = logging.getLogger("codex_ml")


class StageError(RuntimeError):
    """A problem with a stage's inputs that the user must fix; printed as one line, no traceback."""


def progress_enabled() -> bool:
    """Progress bars on an interactive terminal only; CI logs stay quiet."""
    return sys.stderr.isatty() and not os.environ.get("CI")


def progress(iterable: Iterable[T], **kwargs: Any) -> Iterable[T]:
    return tqdm(iterable, disable=not progress_enabled(), dynamic_ncols=True, **kwargs)


def setup_logging() -> None:
    logging.basicConfig(level=os.environ.get("CODEX_LOG_LEVEL", "INFO"),
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def run_stage(name: str, main: Callable[[], None]) -> None:
    """Run a stage's main(); bad params or inputs exit 2 with one clear message (one line per problem)
    and no traceback."""
    setup_logging()
    try:
        main()
    except (ParamsError, StageError) as exc:
        print_error(f"codex-ml {name}", exc)
        sys.exit(2)


def print_error(who: str, exc: Exception) -> None:
    """`who: error: problem` on stderr, one line per problem (a ParamsError may hold several)."""
    for line in str(exc).splitlines():
        print(f"{who}: error: {line}", file=sys.stderr)


def resolve_cores(requested: int) -> int:
    """A worker or thread count as params give it: 0 means every core this process may run on."""
    if requested > 0:
        return requested
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _libc_malloc_trim() -> Callable[[int], int] | None:
    try:
        trim: Callable[[int], int] = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
        return trim
    except (OSError, AttributeError):  # not glibc
        return None


_MALLOC_TRIM = _libc_malloc_trim()


def release_freed_memory() -> None:
    """Hand memory this process freed back to the OS (glibc's malloc_trim; elsewhere nothing). Threads
    that allocate get a heap (arena) each from glibc, which keeps what they free: a stage that encodes
    on many threads would otherwise grow with its corpus (docs/scaling.md, benchmarks/bench_scale.py)."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)
