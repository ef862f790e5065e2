"""Atomic file writes: write a temporary file beside the target, then rename it into place.

A crash or SIGKILL mid-write leaves the previous file (or none), never half a file.

Example:
    >>> import tempfile, pathlib
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = atomic_write(pathlib.Path(d) / "a.txt", "hello")
    ...     p.read_text()
    'hello'
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from forgetir.errors import ForgetirError, OutputPathError

# Longest file name most file systems take (ext4, XFS, APFS, NTFS: 255 bytes).
NAME_MAX = 255
_KINDS = (
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISLNK, "a symlink"),
    (stat.S_ISDIR, "a folder"),
)


def kind_of(path: str | Path) -> str | None:
    """What ``path`` itself is when it is not a regular file (symlinks not followed): "a
    character device", "a FIFO (named pipe)", "a symlink", "a folder"...; None for a regular
    file or nothing there.

    Example:
        >>> kind_of("/dev/null")
        'a character device'
    """
    try:
        mode = os.lstat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):  # nothing there (a parent is a file)
        return None
    except OSError as e:
        raise OutputPathError(f"cannot inspect {path}: {e.strerror or e}") from e
    return next((what for test, what in _KINDS if test(mode)), None)


def check_replaceable(path: str | Path, what: str = "output") -> None:
    """Refuse to replace ``path`` unless it is a regular file or absent: a rename onto a device,
    FIFO, socket or symlink would destroy something that is not ours (``/dev/full`` as root)."""
    kind = kind_of(path)
    if kind is not None:
        raise OutputPathError(
            f"{what} {path} is {kind}; forgetir writes only regular files (give a new file name)"
        )


def short_name(name: str, room: int) -> str:
    """``name`` unchanged if ``room`` more bytes keep it within :data:`NAME_MAX`, else cut and
    tagged with a hash of the whole name (deterministic: the same name, the same short form).

    Example:
        >>> len(short_name("x" * 300, 20).encode()) + 20 <= NAME_MAX
        True
    """
    if len(name.encode("utf-8")) + room <= NAME_MAX:
        return name
    tag = hashlib.sha256(name.encode("utf-8")).hexdigest()[:12]
    keep = name.encode("utf-8")[: max(NAME_MAX - room - len(tag) - 1, 0)]
    return keep.decode("utf-8", "ignore") + "~" + tag


def temp_path(path: str | Path) -> Path:
    """A new empty temporary file beside ``path`` with the mode ``open`` would give it."""
    path = Path(path)
    base = short_name(path.name, 2 + 8 + 4)  # ".NAME." + mkstemp's 8 characters + ".tmp"
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{base}.", suffix=".tmp")
    os.close(fd)
    mask = os.umask(0)  # mkstemp creates 0600
    os.umask(mask)
    os.chmod(name, 0o666 & ~mask)
    return Path(name)


def fsync_file(path: str | Path) -> None:
    """Flush ``path``'s data to disk (so a rename after it cannot expose an empty file)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write ``path``'s new content to (by any writer: torch.save,
    Pillow, safetensors); on leaving the block it is synced and renamed onto ``path``, and on an
    error removed.

    Example:
        >>> import tempfile, pathlib
        >>> with tempfile.TemporaryDirectory() as d:
        ...     with atomic_path(pathlib.Path(d) / "x.bin") as tmp:
        ...         _ = tmp.write_bytes(b"x")
        ...     sorted(p.name for p in pathlib.Path(d).iterdir())
        ['x.bin']
    """
    path = Path(path)
    check_replaceable(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = temp_path(path)
    except OSError as e:
        raise OutputPathError(f"cannot write {path}: {e.strerror or e}") from e
    try:
        yield tmp
        fsync_file(tmp)
        check_replaceable(path)  # again: something may have appeared there meanwhile
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, ForgetirError):
            raise
        raise OutputPathError(f"cannot write {path}: {e.strerror or e}") from e
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, Exception) and _disk_full(path.parent):
            # Writers such as torch.save report a full disk as their own error type.
            raise OutputPathError(
                f"cannot write {path}: no space left on the device ({type(e).__name__}: {e})"
            ) from e
        raise


def _disk_full(folder: Path) -> bool:
    """Whether the file system of ``folder`` has no block left for an unprivileged write."""
    try:
        return os.statvfs(folder).f_bavail == 0
    except (OSError, AttributeError):  # gone, or no statvfs (Windows)
        return False


def atomic_write(path: str | Path, data: bytes | str) -> Path:
    """Write ``data`` (text as UTF-8) to ``path`` atomically, with the mode ``open`` would give."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return Path(path)


def atomic_json(path: str | Path, obj: Any, indent: int = 2, **dump_kwargs: Any) -> Path:
    """``json.dumps(obj)`` written atomically, with a final newline."""
    text = json.dumps(obj, indent=indent, ensure_ascii=False, **dump_kwargs)
    return atomic_write(path, text + "\n")


def _existing_ancestor(path: Path) -> Path:
    """The nearest of ``path`` and its parents that exists (``path`` itself included)."""
    anc = path
    while not anc.exists() and not anc.is_symlink() and anc != anc.parent:
        anc = anc.parent
    return anc


def _check_can_create_in(start: Path, path: Path, what: str) -> None:
    """Probe that ``start`` (a folder to create or write in) can hold ``path``'s output."""
    anc = _existing_ancestor(start)
    if not anc.is_dir():
        raise OutputPathError(
            f"{what} {path}: {anc} is not a folder, so nothing can be written under it"
        )
    try:
        fd, probe = tempfile.mkstemp(dir=anc, prefix=".forgetir-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise OutputPathError(f"{what} {path}: cannot write in {anc} ({e.strerror or e})") from e


def check_output_dir(path: str | Path, what: str = "--out") -> Path:
    """Refuse, before any work, an output folder that cannot be made or written: a file (or a
    broken symlink) in its place, a file among its parents, no write permission. Creates nothing.

    Example:
        >>> import tempfile, pathlib
        >>> with tempfile.TemporaryDirectory() as d:
        ...     f = pathlib.Path(d, "f"); _ = f.write_text("x")
        ...     try:
        ...         check_output_dir(f / "run")
        ...     except OutputPathError as e:
        ...         print(str(e).replace(d, "D"))
        --out D/f/run: D/f is not a folder, so nothing can be written under it
    """
    path = Path(path)
    if path.is_symlink() and not path.exists():
        raise OutputPathError(f"{what} {path} is a broken or looping symlink")
    kind = kind_of(path)
    if kind == "a symlink":
        raise OutputPathError(f"{what} {path} is a symlink; give the folder it points to")
    if path.exists() and kind != "a folder":
        raise OutputPathError(f"{what} {path} is {kind or 'a file'}; give a folder")
    _check_can_create_in(path, path, what)
    return path


def check_output_file(path: str | Path, what: str = "--out") -> Path:
    """Refuse, before any work, an output file that cannot be written: a folder in its place,
    a file among its parents, no write permission, a device, FIFO, socket or symlink in its
    place (the write would replace it). Creates nothing."""
    path = Path(path)
    if path.is_dir():
        raise OutputPathError(f"{what} {path} is a folder; give a file name")
    if path.is_symlink() and not path.exists():
        raise OutputPathError(f"{what} {path} is a broken or looping symlink")
    check_replaceable(path, what)
    _check_can_create_in(path.parent, path, what)
    return path


def remove_orphan_temps(folder: str | Path) -> list[Path]:
    """Delete the temporary files (``.NAME.*.tmp``) that a killed atomic write left in
    ``folder``; returns them. Call only where no other process is writing the folder."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    orphans = [p for p in folder.glob(".*.tmp") if p.is_file()]
    for p in orphans:
        p.unlink(missing_ok=True)
    return orphans
