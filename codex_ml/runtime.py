"""What every stage script shares: the error boundary, progress bars and logging set-up."""

from __future__ import annotations

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
    """Run a stage's main(); bad params or inputs exit 2 with one clear message and no traceback."""
    setup_logging()
    try:
        main()
    except (ParamsError, StageError) as exc:
        print(f"codex-ml {name}: error: {exc}", file=sys.stderr)
        sys.exit(2)


def resolve_cores(requested: int) -> int:
    """A worker or thread count as params give it: 0 means every core this process may run on."""
    if requested > 0:
        return requested
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
