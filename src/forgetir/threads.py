"""Thread control: how many torch intra-op threads a command uses.

Generating a dead-leaves image or degrading one patch is a few milliseconds of work on tensors
too small to gain from intra-op threads; on a busy 2-core machine those threads cost 30x more
than they save (measured: 63 vs 1.7 images/s). Such work runs under :func:`single_thread`.

For the model itself, torch's default (one thread per core) is right on an idle machine, but
when another job holds a core, two threads on two contended cores ran ~10x slower than one
(measured: the demo took 18.5 min instead of 2). :func:`apply_threads` therefore defaults to
the cores that are free now (:func:`free_cores`).

Example:
    >>> import torch
    >>> with single_thread():
    ...     torch.get_num_threads()
    1
"""

from __future__ import annotations

import os
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


def free_cores() -> int:
    """The CPUs this process may use minus the 1-minute load average (at least 1).

    Example:
        >>> free_cores() >= 1
        True
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        load = 0.0
    return max(1, min(cores, int(cores - load + 0.5)))


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
