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
from pathlib import Path
from typing import Any


def atomic_write(path: str | Path, data: bytes | str) -> Path:
    """Write ``data`` (text as UTF-8) to ``path`` atomically, with the mode ``open`` would give."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
        mask = os.umask(0)  # mkstemp creates 0600
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_json(path: str | Path, obj: Any, indent: int = 2, **dump_kwargs: Any) -> Path:
    """``json.dumps(obj)`` written atomically, with a final newline."""
    text = json.dumps(obj, indent=indent, ensure_ascii=False, **dump_kwargs)
    return atomic_write(path, text + "\n")
