"""The working folder of a run and its lock: one run at a time per ``--out``.

A run is built in a hidden working folder beside its ``--out`` (``.NAME.partial-XXXXXXXX``) and
moved into place only once complete. While a process works there it holds an exclusive
``flock`` on the folder's lock file, which also names it (pid, host, start time). The lock dies
with the process, SIGKILL included, so a folder whose lock can be taken is a leftover that may
be removed; one whose lock is held belongs to a live run, and a second run into the same
``--out`` is refused, naming that run. Only folders whose name is exactly ours are touched:
the ``--out`` name is never used as a glob pattern (``--out '*'`` matches only itself).

Example:
    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "run"
    >>> with working_folder(out) as work:
    ...     work.name.startswith(".run.partial-")
    True
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from forgetir.atomic import short_name
from forgetir.errors import RunExistsError

try:  # POSIX; elsewhere a lock's holder is judged by its pid alone
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = ".forgetir.lock"
_SUFFIX = re.compile(r"[a-z0-9_]{8}")  # what tempfile.mkdtemp appends
# A folder without a lock file younger than this may be one being created right now.
_GRACE_S = 30.0


def partial_prefix(place: Path) -> str:
    """``.NAME.partial-`` for the run folder ``place``, ``NAME`` shortened (with a hash) so that
    the working folder's name stays within the file-name limit.

    Example:
        >>> partial_prefix(Path("runs/a"))
        '.a.partial-'
    """
    return f".{short_name(place.name, 1 + 9 + 8)}.partial-"


def is_ours(folder: Path, prefix: str) -> bool:
    """Whether ``folder``'s name is exactly a working folder name for ``prefix``."""
    name = folder.name
    return name.startswith(prefix) and _SUFFIX.fullmatch(name[len(prefix) :]) is not None


def _describe(lock: Path) -> str:
    try:
        info = json.loads(lock.read_text(encoding="utf-8"))
        return f"pid {info['pid']} on host {info['host']}, started {info['started']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "a process whose lock file cannot be read"


def _pid_alive(lock: Path) -> bool:
    try:
        info = json.loads(lock.read_text(encoding="utf-8"))
        if info["host"] != socket.gethostname():
            return True  # cannot tell: assume alive
        os.kill(int(info["pid"]), 0)
    except ProcessLookupError:
        return False
    except (OSError, ValueError, KeyError, TypeError):
        return True
    return True


def holder(folder: Path) -> str | None:
    """Who works in ``folder`` now (a line naming the process), or None when nobody does."""
    lock = folder / LOCK_NAME
    if not lock.is_file():
        try:
            young = time.time() - folder.stat().st_mtime < _GRACE_S
        except OSError:
            return None
        return "a run that is starting or finishing" if young else None
    if fcntl is None:  # pragma: no cover - Windows
        return _describe(lock) if _pid_alive(lock) else None
    try:
        fd = os.open(lock, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return _describe(lock)
    finally:
        os.close(fd)  # releases the probe's lock, if it got it
    return None


def remove_stale(place: Path) -> list[Path]:
    """Remove the working folders of ``place`` left by runs that died; refuse when one is still
    worked in by a live run (naming it). Returns the folders removed."""
    prefix = partial_prefix(place)
    removed = []
    with contextlib.suppress(FileNotFoundError):
        for folder in place.parent.iterdir():
            if not is_ours(folder, prefix) or folder.is_symlink() or not folder.is_dir():
                continue
            who = holder(folder)
            if who is not None:
                raise RunExistsError(
                    f"--out {place} is being written by another run ({who}; working folder "
                    f"{folder}); wait for it to finish or choose another --out"
                )
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _take(lock: Path) -> IO[str]:
    # Locked and filled under another name, then renamed: whoever finds the lock file by its
    # name finds it held and naming its holder.
    new = lock.with_name(lock.name + ".new")
    handle = open(new, "w", encoding="utf-8")  # noqa: SIM115 - held for the whole run
    if fcntl is not None:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    handle.write(json.dumps(_holder_info()) + "\n")
    handle.flush()
    os.replace(new, lock)
    return handle


@contextlib.contextmanager
def working_folder(place: Path) -> Iterator[Path]:
    """A new locked working folder beside ``place`` (stale ones removed first, a live one
    refused). The lock is held until the block ends; the folder is left for the caller to
    move into place (its lock file already gone) or to remove."""
    place.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(place)
    work = Path(tempfile.mkdtemp(dir=place.parent, prefix=partial_prefix(place)))
    lock = work / LOCK_NAME
    handle = _take(lock)
    try:
        yield work
    finally:
        # Unlinked before the move (the run folder holds no lock file) but still held: a
        # cleaner that sees the folder without a lock file treats it as young, not stale.
        lock.unlink(missing_ok=True)
        handle.close()


@contextlib.contextmanager
def hold(folder: Path, what: str = "--out") -> Iterator[None]:
    """Hold the lock of ``folder`` (a run that works in place, such as ``forgetir train``)
    while the block runs; refuse, naming the holder, when another live process holds it."""
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / LOCK_NAME
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)  # never truncated before it is ours
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise RunExistsError(
            f"{what} {folder} is being written by another run ({_describe(lock)}); wait for it "
            f"to finish or choose another {what}"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, (json.dumps(_holder_info()) + "\n").encode())
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)
        os.close(fd)


def _holder_info() -> dict[str, object]:
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def release(work: Path) -> None:
    """Remove the lock file of ``work`` (before it is moved into place); the lock itself is
    held until :func:`working_folder` ends."""
    (work / LOCK_NAME).unlink(missing_ok=True)
