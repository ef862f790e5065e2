"""Per-pixel colours of the textured dead-leaves classes (``stripes``, ``motif``).

Each function maps the leaf map ``front`` (side*side,) of a super-sampled render (``side`` =
output size x ``ss``) and the leaves' two colours ``colours`` (n_leaves, 2, 3) to per-pixel
colours (side*side, 3); :func:`forgetir.data.deadleaves.render_dead_leaves` averages them down.

- ``stripes``: each leaf a sinusoidal grating of random orientation, period and phase, or a
  linear gradient between its two colours (draws from the render's generator).
- ``motif``: each leaf shows one *fixed* 8x8 binary motif (:data:`MOTIF`) tiled on the image's
  pixel grid, in the leaf's two colours. Nothing about the pattern is random, so restoring it
  under noise or inside a masked box needs a prior that only training on this class gives:
  the class-specific skill of the content-class scenario.

Example:
    >>> import torch
    >>> front = torch.zeros(16 * 16, dtype=torch.long)  # one leaf covers everything
    >>> colours = torch.tensor([[[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]]])
    >>> pix = motif_fill(front, 16, 2, colours)
    >>> pix.shape, float(pix.mean()) == float(MOTIF.float().mean())
    (torch.Size([256, 3]), True)
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

# Stripe periods (output pixels) of the "stripes" class.
STRIPE_PERIOD: tuple[float, float] = (3.0, 24.0)

# The "motif" class's tile: 8x8 output pixels, "#" = the leaf's second colour. Asymmetric and
# irregular on purpose, so that no flip, shift or smooth interpolation reproduces it.
_MOTIF_ROWS = (
    "##....#.",
    "#..#..#.",
    "#..#####",
    "....#...",
    ".##.#..#",
    ".#..##.#",
    ".#...#..",
    "####.#..",
)
MOTIF: Tensor = torch.tensor([[c == "#" for c in row] for row in _MOTIF_ROWS])


def motif_fill(front: Tensor, side: int, ss: int, colours: Tensor) -> Tensor:
    """Per-pixel colours of the ``motif`` class: :data:`MOTIF` tiled on the output pixel grid.

    Each super-sampled pixel takes the motif bit of the output pixel it belongs to, so the
    down-sampled image shows the motif exactly (anti-aliasing acts at leaf edges only).
    """
    k = MOTIF.shape[0]
    out_coord = torch.arange(side) // ss
    bit = MOTIF[(out_coord % k).unsqueeze(1), (out_coord % k).unsqueeze(0)].reshape(-1)
    c0 = colours[:, 0].index_select(0, front)
    c1 = colours[:, 1].index_select(0, front)
    return torch.where(bit.unsqueeze(1), c1, c0)


def stripes_fill(
    front: Tensor,
    side: int,
    ss: int,
    colours: Tensor,
    centres: Tensor,
    radii: Tensor,
    gen: torch.Generator,
) -> Tensor:
    """Per-pixel colours of the ``stripes`` class: each leaf a grating or a linear gradient."""
    n_leaves = colours.shape[0]
    phi = torch.rand(n_leaves, generator=gen) * math.pi
    period = torch.empty(n_leaves).uniform_(*STRIPE_PERIOD, generator=gen)
    phase = torch.rand(n_leaves, generator=gen) * (2 * math.pi)
    is_grating = torch.rand(n_leaves, generator=gen) < 0.5
    # the last (background) leaf has no centre or radius: centre it, give it the image size
    cxy = torch.cat([centres, torch.full((1, 2), side / (2 * ss))]) * ss
    rad = torch.cat([radii, torch.tensor([side / ss])]) * ss
    # one gather of every per-leaf quantity the pixels need
    table = torch.stack(
        [
            cxy[:, 0],
            cxy[:, 1],
            phi.cos(),
            phi.sin(),
            2 * math.pi / (period * ss),
            phase,
            0.5 / rad,
            is_grating.float(),
        ],
        dim=1,
    ).index_select(0, front)
    cx, cy, cos, sin, freq, ph, inv_d, grating_leaf = table.unbind(1)
    coords = torch.arange(side, dtype=torch.float32) + 0.5
    px = coords.repeat(side)
    py = coords.repeat_interleave(side)
    t = (px - cx) * cos + (py - cy) * sin
    grating = (0.5 + 1.5 * torch.sin(t * freq + ph)).clamp(0, 1)
    ramp = (0.5 + t * inv_d).clamp(0, 1)
    wgt = torch.where(grating_leaf > 0, grating, ramp).unsqueeze(1)
    c0 = colours[:, 0].index_select(0, front)
    c1 = colours[:, 1].index_select(0, front)
    return c0 + wgt * (c1 - c0)
