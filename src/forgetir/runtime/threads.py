"""Thread control: how many torch intra-op threads a command uses.

Generating a dead-leaves image or degrading one patch is a few milliseconds of work on tensors
too small to gain from intra-op threads; on a busy 2-core machine those threads cost 30x more
than they save (measured: 63 vs 1.7 images/s). Such work runs under :func:`single_thread`.

For the model itself, torch's default (one thread per core) is right on an idle machine, but
when another job holds a core, two threads on two contended cores ran ~10x slower than one
(measured: the demo took 18.5 min instead of 2). :func:`apply_threads` therefore defaults to
the cores that are free now (:func:`free_cores`, sampled over 0.3 s).

Example:
    >>> import torch
    >>> with single_thread():
    ...     torch.get_num_threads()
    1
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def single_thread() -> Iterator[None]:
    """Run the block with one torch intra-op thread, restoring the previous count after."""
    previous = torch.get_num_threads()
    if previous == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _cpu_times(path: str = "/proc/stat") -> tuple[int, int] | None:
    """(busy, total) jiffies of all CPUs from ``/proc/stat``; None where there is no such file."""
    try:
        with open(path) as f:
            fields = [int(v) for v in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def busy_cpus(window_s: float = 0.3) -> float:
    """How many CPUs other jobs keep busy right now: the machine's CPU use over ``window_s``
    seconds while this process sleeps (so its own use is not counted). Falls back to the
    1-minute load average where ``/proc/stat`` is missing.

    Why not the load average alone: it lags by a minute both ways — a job started 20 s ago
    barely shows (the demo then took two threads on a busy core), and a test suite that just
    ended still counts as a busy core (the demo then ran on one of two idle cores).

    Example:
        >>> busy_cpus(0.05) >= 0.0
        True
    """
    first = _cpu_times()
    if first is not None:
        time.sleep(window_s)
        second = _cpu_times()
        if second is not None and second[1] > first[1]:
            share = (second[0] - first[0]) / (second[1] - first[1])
            return share * (os.cpu_count() or 1)
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return 0.0


def free_cores() -> int:
    """The CPUs this process may use minus those other jobs keep busy now (at least 1).

    Example:
        >>> free_cores() >= 1
        True
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, int(cores - busy_cpus() + 0.5)))


def apply_threads(requested: int | None = None) -> int:
    """Set torch's intra-op threads: ``requested``, else ``$OMP_NUM_THREADS`` if set (torchrun
    sets it per process), else :func:`free_cores`. Returns the number set.

    Example:
        >>> apply_threads(1)
        1
    """
    if requested is not None and requested < 1:
        from forgetir.errors import InvalidInputError

        raise InvalidInputError(f"--threads={requested} is out of range; valid: >= 1")
    if requested is None:
        env = os.environ.get("OMP_NUM_THREADS", "")
        requested = int(env) if env.isdigit() and int(env) > 0 else free_cores()
    torch.set_num_threads(requested)
    return requested
