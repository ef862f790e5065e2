import os

import pytest
import torch

from forgetir import threads


@pytest.fixture(autouse=True)
def _restore_threads():
    yield
    torch.set_num_threads(1)


@pytest.mark.parametrize(("load", "expected"), [(0.0, 4), (1.2, 3), (3.6, 1), (9.0, 1)])
def test_free_cores_subtracts_the_load(monkeypatch, load, expected):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.setattr(os, "getloadavg", lambda: (load, 0.0, 0.0))
    assert threads.free_cores() == expected


def test_apply_threads_order(monkeypatch):
    monkeypatch.setattr(threads, "free_cores", lambda: 3)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert threads.apply_threads(None) == 2 == torch.get_num_threads()
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert threads.apply_threads(None) == 3
    assert threads.apply_threads(1) == 1 == torch.get_num_threads()
    with pytest.raises(ValueError, match="--threads"):
        threads.apply_threads(0)
