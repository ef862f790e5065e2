"""Progress for every stage that takes more than a couple of seconds.

A rich bar when stderr is a terminal, otherwise a plain line every ~5% with rate and ETA;
``quiet`` silences both.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


class Progress:
    """A rich progress bar on a terminal; a line every ~5% of the run otherwise (unless quiet).

    The plain-line fallback keeps log files readable when stderr is not a terminal (no control
    characters, one line per ~5%, each with its rate and ETA).
    """

    def __init__(self, total: int, start: int = 0, enabled: bool = True, label: str = "") -> None:
        self.total, self.enabled, self.label = total, enabled, label
        self.bar = None
        self.every = max(1, total // 20)
        self.t0 = time.perf_counter()
        self.start = start
        if not enabled:
            return
        from rich.console import Console

        console = Console(stderr=True)
        if console.is_terminal:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import (
                Progress as RichProgress,
            )

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
            self.task = self.bar.add_task(label, total=total, completed=start, info="")
            self.bar.start()

    def update(self, step: int, info: str) -> None:
        if self.bar is not None:
            self.bar.update(self.task, completed=step, info=info)
        elif self.enabled and (step % self.every == 0 or step == self.total):
            rate = (step - self.start) / max(1e-9, time.perf_counter() - self.t0)
            eta = (self.total - step) / rate if rate > 0 else float("nan")
            print(
                f"{self.label} {step}/{self.total} {info} ({rate:.2f} steps/s, eta {eta:.0f}s)",
                file=sys.stderr,
                flush=True,
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def track(items: Iterable[T], total: int, label: str, quiet: bool = False) -> Iterator[T]:
    """Iterate ``items`` showing progress (rich bar on a terminal, ETA lines otherwise).

    Example:
        >>> list(track(range(3), 3, "demo", quiet=True))
        [0, 1, 2]
    """
    with Progress(total, 0, not quiet, label) as bar:
        for i, item in enumerate(items, 1):
            yield item
            bar.update(i, "")
