"""Provenance stamps: which software ran, and when (one timestamp format for every record).

Kept apart from the report renderer so that the commands that write records (``unlearn``,
``verify``) need not import it.

Example:
    >>> sorted(software_versions())[:3]
    ['forgetir', 'numpy', 'platform']
    >>> len(utc_now())
    20
"""

from __future__ import annotations

import platform
import time

import numpy as np
import torch

__all__ = ["software_versions", "utc_now"]


def software_versions() -> dict[str, str]:
    """Versions of what ran: python, torch, forgetir, numpy and the platform.

    Example:
        >>> "torch" in software_versions()
        True
    """
    from forgetir._version import __version__  # at call time: the package root imports the models

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "forgetir": __version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
    }


def utc_now() -> str:
    """The current time as ``YYYY-MM-DDTHH:MM:SSZ`` (UTC), the format of every run record.

    Example:
        >>> utc_now().endswith("Z")
        True
    """
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
