import os

import pytest
import torch

from forgetir.runtime import threads


@pytest.fixture(autouse=True)
def _restore_threads():
    yield
    torch.set_num_threads(1)


@pytest.mark.parametrize(("busy", "expected"), [(0.0, 4), (1.2, 3), (3.6, 1), (9.0, 1)])
def test_free_cores_subtracts_the_busy_cpus(monkeypatch, busy, expected):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.setattr(threads, "busy_cpus", lambda: busy)
    assert threads.free_cores() == expected


def test_busy_cpus_reads_the_cpu_share_not_the_load_average(monkeypatch):
    # 2 CPUs, 100 jiffies pass, 50 of them busy: one CPU's worth, whatever the load average says
    samples = iter([(1000, 4000), (1050, 4100)])
    monkeypatch.setattr(threads, "_cpu_times", lambda: next(samples))
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(os, "getloadavg", lambda: (7.0, 0.0, 0.0))
    assert threads.busy_cpus(0.0) == pytest.approx(1.0)


def test_busy_cpus_falls_back_to_the_load_average(monkeypatch):
    monkeypatch.setattr(threads, "_cpu_times", lambda: None)
    monkeypatch.setattr(os, "getloadavg", lambda: (1.5, 0.0, 0.0))
    assert threads.busy_cpus(0.0) == 1.5


def test_cpu_times_parses_proc_stat(tmp_path):
    stat = tmp_path / "stat"
    stat.write_text("cpu  10 2 3 100 5 1 1 0 0 0\ncpu0 5 1 1 50 2 0 0 0 0 0\n")
    assert threads._cpu_times(str(stat)) == (17, 122)
    assert threads._cpu_times(str(tmp_path / "missing")) is None


def test_apply_threads_order(monkeypatch):
    monkeypatch.setattr(threads, "free_cores", lambda: 3)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert threads.apply_threads(None) == 2 == torch.get_num_threads()
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert threads.apply_threads(None) == 3
    assert threads.apply_threads(1) == 1 == torch.get_num_threads()
    with pytest.raises(ValueError, match="--threads"):
        threads.apply_threads(0)
