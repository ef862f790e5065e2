"""Freed-memory retention: large tensors reused without page faults once it is on."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest
import torch


def _faults_per_allocation(mib: int, repeats: int = 4) -> float:
    n = (mib << 20) // 4
    torch.empty(n).fill_(1.0)  # first touch: faults whatever the setting
    start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(repeats):
        torch.empty(n).fill_(1.0)
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start) / repeats


_MEASURE = """
import sys
from tests.test_memory import _faults_per_allocation
from forgetir.runtime.memory import retain_freed_memory
if not retain_freed_memory(False):
    sys.exit(3)
before = _faults_per_allocation(48)
assert retain_freed_memory(True)
_faults_per_allocation(48)  # the heap grows once to hold the new size (measured: 0 or ~3,000)
print(before, _faults_per_allocation(48))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc only")
def test_retained_memory_is_reused_without_page_faults() -> None:
    # In a fresh process: after hundreds of tests the heap's layout in this one is arbitrary.
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), str(root / "src")])}
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE], capture_output=True, text=True, env=env, cwd=root
    )
    if done.returncode == 3:
        pytest.skip("this C library has no mallopt (not glibc)")
    assert done.returncode == 0, done.stderr
    before, after = map(float, done.stdout.split())
    # With glibc's defaults a 48 MiB tensor is a fresh mmap each time: ~12,000 4-KiB faults.
    assert before > 1000
    assert after < 100
