"""Thread control for small-tensor work.

Generating a dead-leaves image or degrading one patch is a few milliseconds of work on tensors
too small to gain from intra-op threads; on a busy 2-core machine those threads cost 30x more
than they save (measured: 63 vs 1.7 images/s). Such work runs under :func:`single_thread`.

Example:
    >>> import torch
    >>> with single_thread():
    ...     torch.get_num_threads()
    1
"""

from __future__ import annotations

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
