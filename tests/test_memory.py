"""Freed-memory retention: large tensors reused without page faults once it is on."""

from __future__ import annotations

import resource
import sys

import pytest
import torch

from forgetir.memory import retain_freed_memory


def _faults_per_allocation(mib: int, repeats: int = 4) -> float:
    n = (mib << 20) // 4
    torch.empty(n).fill_(1.0)  # first touch: faults whatever the setting
    start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(repeats):
        torch.empty(n).fill_(1.0)
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start) / repeats


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc only")
def test_retained_memory_is_reused_without_page_faults() -> None:
    if not retain_freed_memory(False):
        pytest.skip("this C library has no mallopt (not glibc)")
    # With glibc's defaults a 48 MiB tensor is a fresh mmap each time: ~12,000 4-KiB faults.
    assert _faults_per_allocation(48) > 1000
    assert retain_freed_memory(True)
    assert _faults_per_allocation(48) < 100
