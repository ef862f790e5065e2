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

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def temp_path(path: str | Path) -> Path:
    """A new empty temporary file beside ``path`` with the mode ``open`` would give it."""
    path = Path(path)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
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
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        yield tmp
        fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write(path: str | Path, data: bytes | str) -> Path:
    """Write ``data`` (text as UTF-8) to ``path`` atomically, with the mode ``open`` would give."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return Path(path)


def atomic_json(path: str | Path, obj: Any, indent: int = 2, **dump_kwargs: Any) -> Path:
    """``json.dumps(obj)`` written atomically, with a final newline."""
    text = json.dumps(obj, indent=indent, ensure_ascii=False, **dump_kwargs)
    return atomic_write(path, text + "\n")
