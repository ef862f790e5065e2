"""Synthetic haze with the atmospheric scattering model, standing in for SOTS/RESIDE outdoor.

``I = J * t + A * (1 - t)`` with transmission ``t = exp(-beta * d)``. As in RESIDE, the
atmospheric light ``A`` is drawn from :data:`A_VALUES` and the scattering coefficient ``beta``
from :data:`BETA_VALUES`. Without a given depth map, depth comes from :func:`synthetic_depth`: a
vertical ramp (far at the top, near at the bottom, as in most outdoor photos) plus a smooth
random field, spread over :data:`DEPTH_RANGE` "metres". That range was chosen so that hazy
images score roughly 10-20 dB PSNR against their clean versions, like SOTS outdoor inputs (on
the shipped photos: about 16 dB on average, 10-23 dB per image and draw).

Example:
    >>> import torch
    >>> from forgetir.degradations.haze import A_VALUES, add_haze
    >>> hazy, params = add_haze(torch.zeros(2, 3, 32, 32), generator=0)
    >>> all(a in A_VALUES for a in params["A"]), tuple(params["depth"].shape)
    (True, (2, 1, 32, 32))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from forgetir.degradations.registry import (
    as_generator,
    check_images,
    per_image,
    register_degradation,
)

A_VALUES: tuple[float, ...] = (0.8, 0.85, 0.9, 0.95, 1.0)
BETA_VALUES: tuple[float, ...] = (0.04, 0.06, 0.08, 0.1, 0.12, 0.16, 0.2)
# Near and far depth of the synthetic map (RESIDE's depths are metres, up to tens).
DEPTH_RANGE: tuple[float, float] = (1.0, 6.0)
# Share of the depth given by the vertical ramp; the rest is the smooth random field.
RAMP_WEIGHT: float = 0.6
# Side of the coarse random grid that is upsampled into the smooth field.
FIELD_GRID: int = 5


def synthetic_depth(
    batch: int,
    height: int,
    width: int,
    generator: torch.Generator | int,
    depth_range: tuple[float, float] = DEPTH_RANGE,
) -> Tensor:
    """Depth maps (B,1,H,W) in ``depth_range``: vertical ramp plus a smooth random field.

    The field is a :data:`FIELD_GRID`-sided grid of Gaussian draws upsampled bicubically, so
    its smoothness does not depend on the image size. Each map is stretched to the full range.

    Example:
        >>> d = synthetic_depth(1, 16, 16, generator=0)
        >>> float(d.min()), float(d.max())
        (1.0, 6.0)
    """
    gen = as_generator(generator)
    near, far = depth_range
    if not 0 <= near <= far:
        raise ValueError(f"depth_range must satisfy 0 <= near <= far, got {depth_range}")
    coarse = torch.randn((batch, 1, FIELD_GRID, FIELD_GRID), generator=gen)
    field = F.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=False)
    field = _stretch(field)
    ramp = torch.linspace(1.0, 0.0, height).view(1, 1, height, 1).expand(batch, 1, height, width)
    d01 = _stretch(RAMP_WEIGHT * ramp + (1 - RAMP_WEIGHT) * field)
    return near + (far - near) * d01


def _stretch(x: Tensor) -> Tensor:
    lo = x.amin(dim=(2, 3), keepdim=True)
    hi = x.amax(dim=(2, 3), keepdim=True)
    return (x - lo) / (hi - lo).clamp_min(1e-8)


@register_degradation("haze")
def add_haze(
    clean: Tensor,
    generator: torch.Generator | int,
    A: float | Sequence[float] | None = None,
    beta: float | Sequence[float] | None = None,
    depth: Tensor | None = None,
) -> tuple[Tensor, dict[str, Any]]:
    """Add haze; ``A`` and ``beta`` left as None are drawn per image from the RESIDE grids.

    ``depth``: optional depth map, (B,1,H,W) or broadcastable to it (e.g. (H,W)), same units
    as :data:`DEPTH_RANGE`. Draw order: A indices, beta indices, then the synthetic depth.
    Returns the hazy batch and ``{"A": [...], "beta": [...], "depth": Tensor(B,1,H,W)}``.
    """
    clean = check_images(clean)
    gen = as_generator(generator)
    b, _, h, w = clean.shape
    a_idx = torch.randint(len(A_VALUES), (b,), generator=gen).tolist()
    b_idx = torch.randint(len(BETA_VALUES), (b,), generator=gen).tolist()
    a_list = per_image(A, b, "A") or [A_VALUES[i] for i in a_idx]
    beta_list = per_image(beta, b, "beta") or [BETA_VALUES[i] for i in b_idx]
    if any(not 0 <= a <= 1 for a in a_list):
        raise ValueError(f"A must lie in [0,1], got {a_list}")
    if any(v < 0 for v in beta_list):
        raise ValueError(f"beta must be >= 0, got {beta_list}")
    if depth is None:
        d = synthetic_depth(b, h, w, gen)
    else:
        try:
            d = torch.as_tensor(depth, dtype=torch.float32).expand(b, 1, h, w)
        except RuntimeError as err:
            raise ValueError(
                f"depth of shape {tuple(torch.as_tensor(depth).shape)} does not broadcast to "
                f"{(b, 1, h, w)}"
            ) from err
        if (d < 0).any():
            raise ValueError("depth must be >= 0")
    dev = clean.device
    d = d.to(dev)
    a_t = torch.tensor(a_list, dtype=torch.float32, device=dev).view(b, 1, 1, 1)
    beta_t = torch.tensor(beta_list, dtype=torch.float32, device=dev).view(b, 1, 1, 1)
    t = torch.exp(-beta_t * d)
    hazy = (clean.float() * t + a_t * (1 - t)).clamp(0, 1).to(clean.dtype)
    return hazy, {"A": a_list, "beta": beta_list, "depth": d.clone()}
