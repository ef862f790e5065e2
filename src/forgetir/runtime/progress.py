"""Progress for every stage that takes more than a couple of seconds.

A rich bar when stderr is a terminal, otherwise a plain line every ~5% with rate and ETA (no
control characters, so log files stay readable); ``quiet`` silences both. Library functions
that can take a while (evaluation, image grids, the report) take ``quiet=None``, meaning "as
the surrounding :func:`quiet_scope` says": the command line opens one from ``--quiet``.

Only the outermost display shows: a stage that runs inside another one's progress (an
evaluation during training, say) stays silent instead of drawing a second bar over the first.

Example:
    >>> with quiet_scope():
    ...     list(track(range(3), 3, "demo"))
    [0, 1, 2]
"""

from __future__ import annotations

import contextvars
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")

_QUIET: contextvars.ContextVar[bool] = contextvars.ContextVar("forgetir_quiet", default=False)
# How many displays are open right now (nested ones stay silent).
_open = 0
# Seconds a library stage runs before its display appears (``delay=None``): quick stages
# print nothing. Tests set it to 0.
STAGE_DELAY = 2.0


@contextmanager
def quiet_scope(quiet: bool = True) -> Iterator[None]:
    """Within the block, progress displays asked with ``quiet=None`` follow ``quiet``.

    Example:
        >>> with quiet_scope():
        ...     is_quiet()
        True
    """
    token = _QUIET.set(quiet)
    try:
        yield
    finally:
        _QUIET.reset(token)


def is_quiet(quiet: bool | None = None) -> bool:
    """``quiet`` itself, or the enclosing :func:`quiet_scope`'s setting when it is None.

    Example:
        >>> is_quiet(True), is_quiet(False)
        (True, False)
    """
    return _QUIET.get() if quiet is None else quiet


class Progress:
    """A rich progress bar on a terminal; a line every ~5% of the run otherwise (unless quiet).

    ``delay`` seconds pass before anything is shown (None: :data:`STAGE_DELAY`), so that
    quick stages print nothing. A display opened while another is open stays silent.

    Example:
        >>> with Progress(4, enabled=False, label="steps") as p:
        ...     p.update(4, "")
        >>> p.shown
        False
    """

    def __init__(
        self,
        total: int,
        start: int = 0,
        enabled: bool = True,
        label: str = "",
        delay: float | None = 0.0,
        unit: str = "steps",
    ) -> None:
        global _open
        self.total, self.label, self.unit = total, label, unit
        self.delay = STAGE_DELAY if delay is None else delay
        self.enabled = enabled and _open == 0
        self.bar = None
        self.shown = False
        self.every = max(1, total // 20)
        self.t0 = time.perf_counter()
        self.start = start
        self.counted = enabled  # whether this display holds a place in _open
        if self.counted:
            _open += 1
        if self.enabled and self.delay <= 0:
            self._show(start)

    def _show(self, step: int) -> None:
        self.shown = True
        from rich.console import Console

        console = Console(stderr=True)
        if not console.is_terminal:
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as RichProgress

        self.bar = RichProgress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[info]}"),
            console=console,
        )
        self.task = self.bar.add_task(self.label, total=self.total, completed=step, info="")
        self.bar.start()

    def update(self, step: int, info: str) -> None:
        if not self.enabled:
            return
        if not self.shown:
            if time.perf_counter() - self.t0 < self.delay:
                return
            self._show(step)
        if self.bar is not None:
            self.bar.update(self.task, completed=step, info=info)
        elif step % self.every == 0 or step == self.total:
            rate = (step - self.start) / max(1e-9, time.perf_counter() - self.t0)
            eta = (self.total - step) / rate if rate > 0 else float("nan")
            print(
                f"{self.label} {step}/{self.total} {info} "
                f"({rate:.2f} {self.unit}/s, eta {eta:.0f}s)",
                file=sys.stderr,
                flush=True,
            )

    def close(self) -> None:
        global _open
        if self.bar is not None:
            self.bar.stop()
            self.bar = None
        if self.counted:
            _open -= 1
            self.counted = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def track(
    items: Iterable[T],
    total: int,
    label: str,
    quiet: bool | None = None,
    delay: float | None = None,
    unit: str = "items",
) -> Iterator[T]:
    """Iterate ``items`` showing progress (rich bar on a terminal, ETA lines otherwise).

    Nothing shows for the first ``delay`` seconds (None: :data:`STAGE_DELAY`); ``quiet=None``
    follows :func:`quiet_scope`. Leave the loop by exhausting it or closing the iterator:
    an abandoned one keeps its place as the open display until it is garbage-collected.

    Example:
        >>> list(track(range(3), 3, "demo", quiet=True))
        [0, 1, 2]
    """
    with Progress(total, 0, not is_quiet(quiet), label, delay, unit) as bar:
        for i, item in enumerate(items, 1):
            yield item
            bar.update(i, "")
