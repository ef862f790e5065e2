"""Tiled inference: restore an image too large for memory tile by tile, overlaps blended.

A model's activation memory grows with the image's area, so a large test image can exhaust
the GPU; run tile by tile, the peak is set by the tile instead (benchmarks/bench_tiling.py
measures it). :func:`restore_tiled` cuts the (reflect-padded) image into ``tile`` × ``tile``
windows, spread evenly so that neighbours share at least ``overlap`` pixels, restores each,
and blends them with a separable raised-cosine window: across an overlap the two tiles'
weights run sin² / cos², so they sum to one and no seam is left. Sides of the image with no
neighbour keep full weight, so one tile covering the whole image gives exactly the untiled
output.

Tile sides are snapped down to the model's size multiple (``model.size_multiple``, 1 for a
plain module) so that no tile needs its own padding; the image is reflect-padded once to that
multiple (as :class:`~forgetir.models.base.RestorationModel` pads) and cropped back.

Example:
    >>> import torch
    >>> x = torch.rand(2, 3, 50, 70)
    >>> y = restore_tiled(torch.nn.Identity(), x, tile=32, overlap=8)
    >>> y.shape, bool(torch.allclose(y, x, atol=1e-6))
    (torch.Size([2, 3, 50, 70]), True)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from forgetir.errors import InvalidInputError

# PromptIR's own tiled test script blends 32-pixel overlaps; a good default for 128+ tiles.
DEFAULT_OVERLAP = 32

__all__ = [
    "DEFAULT_OVERLAP",
    "axis_windows",
    "check_tiling",
    "default_overlap",
    "model_multiple",
    "restore_tiled",
    "tile_starts",
]


def model_multiple(model: nn.Module) -> int:
    """The side multiple ``model`` needs (``size_multiple`` of forgetir models, else 1).

    Example:
        >>> model_multiple(torch.nn.Identity())
        1
    """
    return max(1, int(getattr(model, "size_multiple", 1) or 1))


def default_overlap(tile: int) -> int:
    """The overlap used when none is given: 32 pixels, a quarter of a tile below 128.

    Example:
        >>> default_overlap(256), default_overlap(64)
        (32, 16)
    """
    return min(DEFAULT_OVERLAP, tile // 4)


def check_tiling(
    tile: int,
    overlap: int,
    multiple: int = 1,
    tile_option: str = "--tile",
    overlap_option: str = "--tile-overlap",
) -> int:
    """Refuse a tile below ``multiple`` or an overlap outside ``[0, tile)``, naming the options;
    return the tile side snapped down to a multiple of ``multiple``.

    Example:
        >>> check_tiling(130, 32, 8)
        128
        >>> check_tiling(64, 64)
        Traceback (most recent call last):
        ...
        forgetir.errors.InvalidInputError: --tile-overlap=64 must be smaller than --tile=64
    """
    for option, value in ((tile_option, tile), (overlap_option, overlap)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise InvalidInputError(f"{option}={value!r} must be a whole number of pixels")
    if tile < multiple:
        why = " (the model's size multiple)" if multiple > 1 else ""
        raise InvalidInputError(f"{tile_option}={tile} is out of range; valid: >= {multiple}{why}")
    if overlap < 0:
        raise InvalidInputError(f"{overlap_option}={overlap} is out of range; valid: >= 0")
    snapped = tile - tile % multiple
    if overlap >= snapped:
        why = f" (snapped to {snapped}, a multiple of {multiple})" if snapped != tile else ""
        raise InvalidInputError(
            f"{overlap_option}={overlap} must be smaller than {tile_option}={tile}{why}"
        )
    return snapped


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Offsets of the tiles along a side of ``length``: as few tiles as share at least
    ``overlap`` pixels with each neighbour, spread evenly from edge to edge (so no last tile
    is left with a lopsided, much wider overlap).

    Example:
        >>> tile_starts(100, 40, 10), tile_starts(30, 40, 10), tile_starts(110, 40, 10)
        ([0, 30, 60], [0], [0, 23, 47, 70])
    """
    if length <= tile:
        return [0]
    n = math.ceil((length - overlap) / (tile - overlap))
    # steps of (length - tile) / (n - 1) <= tile - overlap, an integer: rounding keeps it so
    return [round(i * (length - tile) / (n - 1)) for i in range(n)]


def _ramp(n: int) -> torch.Tensor:
    """sin² rising over ``n`` pixels (sampled at pixel centres: never exactly 0); its mirror
    image is cos² of the same argument, so a rising and a falling ramp sum to 1."""
    i = torch.arange(n, dtype=torch.float64)
    return torch.sin(0.5 * math.pi * (i + 0.5) / n) ** 2


def axis_windows(length: int, tile: int, overlap: int) -> list[tuple[int, torch.Tensor]]:
    """``(start, weights)`` of each tile along a side: 1 inside, ramps over each actual overlap
    with a neighbour, 1 at the image's own edges. Where the two ramps of a tile do not meet
    (its overlaps add up to at most ``tile``, as with ``overlap <= tile / 3``), the weights of
    all tiles sum to 1 (up to rounding); where they meet, their product is the weight, still
    positive, and :func:`restore_tiled` divides by the sum.

    Example:
        >>> [(s, w.shape[0]) for s, w in axis_windows(100, 40, 10)]
        [(0, 40), (30, 40), (60, 40)]
    """
    starts = tile_starts(length, tile, overlap)
    size = min(tile, length)
    out = []
    for k, s in enumerate(starts):
        w = torch.ones(size, dtype=torch.float64)
        if k > 0:  # rise across the overlap with the previous tile
            n = starts[k - 1] + size - s
            w[:n] *= _ramp(n)
        if k + 1 < len(starts):  # fall across the overlap with the next tile
            n = s + size - starts[k + 1]
            w[size - n :] *= _ramp(n).flip(0)
        out.append((s, w))
    return out


def _pad_to_multiple(x: torch.Tensor, m: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    ph, pw = (-h) % m, (-w) % m
    if not (ph or pw):
        return x
    # The same rule as RestorationModel._pad: reflect, or replicate where reflect cannot reach.
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


@torch.no_grad()
def restore_tiled(
    model: nn.Module, x: torch.Tensor, tile: int, overlap: int = DEFAULT_OVERLAP
) -> torch.Tensor:
    """``model(x)`` computed ``tile`` × ``tile`` at a time with blended overlaps (float32).

    ``x`` is a (B, C, H, W) batch of images in [0, 1] on the model's device; any H and W.
    ``tile`` is snapped down to the model's size multiple; ``overlap`` (pixels shared by
    neighbouring tiles, ``0 <= overlap < tile``) is blended with a raised-cosine window. Peak
    activation memory is that of one (B, C, tile, tile) forward; the output and one
    (H, W) weight map are held whole. When one tile covers the (padded) image the result is
    exactly ``model(x)``. No gradients (inference only).

    Example:
        >>> restore_tiled(torch.nn.Identity(), torch.zeros(1, 3, 20, 20), 8, 2).shape
        torch.Size([1, 3, 20, 20])
    """
    if x.ndim != 4:
        raise ValueError(f"restore_tiled: expected a (B, C, H, W) batch, got {tuple(x.shape)}")
    m = model_multiple(model)
    tile = check_tiling(tile, overlap, m, "tile", "overlap")
    h, w = x.shape[-2:]
    xp = _pad_to_multiple(x, m)
    hp, wp = xp.shape[-2:]
    rows, cols = axis_windows(hp, tile, overlap), axis_windows(wp, tile, overlap)
    if len(rows) == 1 and len(cols) == 1:
        return model(xp)[..., :h, :w].float()  # one tile: exactly the untiled computation
    th, tw = min(tile, hp), min(tile, wp)
    out: torch.Tensor | None = None
    norm = torch.zeros(hp, wp, dtype=torch.float32, device=x.device)
    for r, wr in rows:
        for c, wc in cols:
            y = model(xp[..., r : r + th, c : c + tw])
            if y.shape[-2:] != (th, tw):
                raise ValueError(
                    f"restore_tiled: the model turned a {th}x{tw} tile into "
                    f"{tuple(y.shape[-2:])}; tiling needs outputs of the input's size"
                )
            win = (wr[:, None] * wc[None, :]).to(device=x.device, dtype=torch.float32)
            if out is None:
                out = torch.zeros((*y.shape[:2], hp, wp), dtype=torch.float32, device=x.device)
            out[..., r : r + th, c : c + tw] += y.float() * win
            norm[r : r + th, c : c + tw] += win
    assert out is not None  # at least two tiles ran
    return (out / norm)[..., :h, :w]
