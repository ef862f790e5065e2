"""Memory a whole-image restoration needs, estimated before any image is restored, and the
refusal (with the estimate and how to shrink it) when it exceeds what is available.

The estimate: the model's widest activation (channels per pixel, measured with forward hooks
on a 64 x 64 probe) x the image's pixels (or the tile's, with ``--tile``) x 4 bytes x
:data:`PEAK_FACTOR`. The factor is measured, not derived: the peak resident memory of one
no-grad forward of ``shipped:before`` on CPU was 24, 20 and 17 times its widest activation at
256, 512 and 1024 pixels square (ru_maxrss before and after the call).

Example:
    >>> import torch
    >>> per_pixel = widest_channels(torch.nn.Conv2d(3, 8, 3, padding=1))
    >>> per_pixel, estimate_bytes(per_pixel, 100, 100) == 8 * 100 * 100 * 4 * PEAK_FACTOR
    (8.0, True)
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from forgetir.errors import InvalidInputError

PEAK_FACTOR = 20  # peak memory / widest activation, measured (see the module docstring)
_PROBE = 64


def widest_channels(model: nn.Module) -> float:
    """The most values per input pixel that one module of ``model`` outputs (a 64 x 64 probe)."""
    widest = 0.0
    probe_pixels = _PROBE * _PROBE

    def hook(module: nn.Module, args: object, out: object) -> None:
        nonlocal widest
        if isinstance(out, torch.Tensor):
            widest = max(widest, out.numel() / probe_pixels)

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    generator = torch.Generator().manual_seed(0)  # leaves the global RNG stream alone
    x = torch.rand(1, 3, _PROBE, _PROBE, generator=generator).to(device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(x)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return widest


def estimate_bytes(channels: float, height: int, width: int) -> int:
    """Estimated peak bytes of one no-grad forward of an ``height`` x ``width`` image."""
    return int(channels * height * width * 4 * PEAK_FACTOR)


def available_bytes(device: torch.device) -> int | None:
    """Memory free for a new allocation on ``device``: a GPU's free memory, or on CPU the
    lesser of MemAvailable and the cgroup's limit minus its use; None when unknown."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    if device.type != "cpu":
        return None
    found = []
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    with contextlib.suppress(OSError, ValueError):
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            used = int(Path("/sys/fs/cgroup/memory.current").read_text())
            found.append(int(limit) - used)
    return min(found) if found else None


def test_image_shapes(sets: Mapping[str, Any]) -> list[tuple[str, int, int]]:
    """(name, height, width) of every degraded image of ``sets`` (test sets by task)."""
    return [
        (f"{ts.task}/{name}", int(x.shape[-2]), int(x.shape[-1]))
        for ts in sets.values()
        for name, x in zip(ts.names, ts.degraded, strict=True)
    ]


def _size(n: float) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def check_fits(
    models: Sequence[nn.Module],
    shapes: Iterable[tuple[str, int, int]],
    tile: int | None,
    device: torch.device,
) -> None:
    """Refuse, before any image is restored, when the largest of ``shapes`` (name, height,
    width) would need more memory than ``device`` has free, with the estimate and the options
    that shrink it. ``FORGETIR_NO_MEMORY_CHECK=1`` skips the check (an estimate can be wrong).
    """
    if os.environ.get("FORGETIR_NO_MEMORY_CHECK") == "1" or not models:
        return
    shapes = list(shapes)
    if not shapes:
        return
    free = available_bytes(device)
    if free is None:
        return
    name, h, w = max(shapes, key=lambda s: min(s[1], tile or s[1]) * min(s[2], tile or s[2]))
    side_h, side_w = (min(h, tile), min(w, tile)) if tile else (h, w)
    channels = max(widest_channels(m) for m in models)
    need = estimate_bytes(channels, side_h, side_w)
    if need <= free:
        return
    what = f"a {side_h}x{side_w} tile of {name}" if tile else f"{name} ({h}x{w}) whole"
    shrink = "a smaller --tile" if tile else "--tile 256 (memory bounded by the tile)"
    raise InvalidInputError(
        f"restoring {what} needs about {_size(need)} (estimate: {channels:.0f} values per "
        f"pixel at the widest layer x {side_h * side_w} pixels x 4 bytes x {PEAK_FACTOR}) but "
        f"{_size(free)} is free on {device}; use {shrink} or --max-side N to shrink the test "
        "images (FORGETIR_NO_MEMORY_CHECK=1 skips this check)"
    )
