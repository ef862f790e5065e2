"""Fault injection: a process killed between an atomic write and its rename, an exception
inside the writer, a lock held by another process, and an unlearning run SIGKILLed at seeded
random moments. After each, no file is half-written, the run folder is absent or whole, and
the next command finishes the job or refuses in one line."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import forgetir
from forgetir.atomic import atomic_path, atomic_write, remove_orphan_temps
from forgetir.cli import main

SRC = str(Path(forgetir.__file__).parents[1])
ENV = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}


def _python(code: str, *args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


def test_a_kill_between_write_and_rename_leaves_the_old_file_whole(tmp_path):
    target = tmp_path / "table.json"
    target.write_text('{"old": true}\n')
    child = _python(
        """
        import os, signal, sys
        from forgetir import atomic
        # SIGKILL at the worst moment: the new content is on disk, not yet renamed.
        atomic.os.replace = lambda a, b: os.kill(os.getpid(), signal.SIGKILL)
        atomic.atomic_write(sys.argv[1], '{"new": true}\\n' * 1000)
        """,
        str(target),
    )
    child.communicate(timeout=60)
    assert child.returncode == -signal.SIGKILL
    assert target.read_text() == '{"old": true}\n'  # never half of the new one
    orphans = remove_orphan_temps(tmp_path)  # what the next run in the folder removes
    assert [p.name.startswith(".table.json.") for p in orphans] == [True]
    assert [p.name for p in tmp_path.iterdir()] == ["table.json"]


def test_an_exception_inside_the_writer_leaves_nothing(tmp_path):
    target = tmp_path / "figure.png"
    with pytest.raises(ZeroDivisionError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half a figure")
        _ = 1 / 0
    assert list(tmp_path.iterdir()) == []
    atomic_write(target, b"whole")
    with pytest.raises(KeyboardInterrupt), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise KeyboardInterrupt
    assert [p.name for p in tmp_path.iterdir()] == ["figure.png"]
    assert target.read_bytes() == b"whole"


_HOLDER = """
    import sys, time
    from pathlib import Path
    from forgetir.runs.lock import hold
    with hold(Path(sys.argv[1])):
        print("held", flush=True)
        time.sleep(600)
"""


def test_a_lock_held_by_another_process_is_one_line_naming_it(tmp_path, capsys):
    out = tmp_path / "train"
    child = _python(_HOLDER, str(out))
    try:
        assert child.stdout.readline().strip() == "held"
        assert main(["train", "--out", str(out), "train.steps=1", "--quiet"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and f"pid {child.pid}" in err, err
        assert "being written by another run" in err
    finally:
        child.kill()
        child.communicate(timeout=60)
    # The lock died with its holder: the folder can be taken again.
    from forgetir.runs.lock import hold

    with hold(out):
        pass


def _run_state(tmp_path: Path) -> tuple[list[str], bool]:
    """The folder's entries, and whether ``run`` (if there) is whole: every file run.json
    records exists with its recorded SHA-256."""
    from forgetir.runs.folder import hash_check

    names = sorted(p.name for p in tmp_path.iterdir())
    run = tmp_path / "run"
    if not run.exists():
        return names, True
    record = json.loads((run / "run.json").read_text())
    checks = [hash_check(run, f, own=True)["check"] for f in record["files"].values()]
    return names, len(checks) >= 3 and set(checks) == {"match"}


@pytest.mark.parametrize("seed", [0, 1])
def test_an_unlearn_killed_at_a_random_moment_leaves_nothing_half_written(parent, tmp_path, seed):
    out = tmp_path / "run"
    argv = ["unlearn", str(parent), "--forget", "dehaze", "--steps", "4", "--batch-size", "2"]
    argv += ["--patch-size", "32", "--max-side", "32", "--no-verify", "--quiet", "--threads", "1"]
    argv += ["--out", str(out)]
    child = subprocess.Popen(
        [sys.executable, "-m", "forgetir.cli", *argv], env=ENV, stderr=subprocess.PIPE, text=True
    )
    # A seeded moment after the run has started working in its folder.
    deadline = time.time() + 120
    while not list(tmp_path.glob(".run.partial-*")) and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(random.Random(seed).uniform(0.0, 3.0))
    child.send_signal(signal.SIGKILL)
    child.communicate(timeout=120)
    names, whole = _run_state(tmp_path)
    # Killed mid-run: only its hidden working folder (lock dead); or it had finished: whole.
    assert whole and (names == ["run"] or all(n.startswith(".run.partial-") for n in names)), names
    if names == ["run"]:
        return
    # The next run removes the dead run's folder and finishes.
    assert main(argv) == 0
    assert _run_state(tmp_path) == (["run"], True)
