"""Centre-box masking: the region an inpainting model must fill in.

The box keeps the image's aspect ratio and covers ``area_ratio`` of its area (side factor
``sqrt(area_ratio)``, rounded to whole pixels); its pixels are set to :data:`FILL_VALUE`
(mid-grey, 0.5, in every channel). Nothing is random, but the signature matches the other
families so that every task is called the same way.

Example:
    >>> import torch
    >>> from forgetir.degradations.inpaint import mask_centre
    >>> masked, params = mask_centre(torch.zeros(1, 3, 16, 16), generator=0, area_ratio=0.25)
    >>> params["box"], float(params["mask"].float().mean())
    ([[4, 4, 8, 8]], 0.25)
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from forgetir.degradations.registry import as_generator, check_images, register_degradation

FILL_VALUE: float = 0.5


@register_degradation("inpaint")
def mask_centre(
    clean: Tensor,
    generator: torch.Generator | int,
    area_ratio: float = 4 / 16,
    fill: float = FILL_VALUE,
) -> tuple[Tensor, dict[str, Any]]:
    """Fill a centred box covering ``area_ratio`` of each image with ``fill``.

    Returns the masked batch and ``{"area_ratio": [...], "box": [[top, left, height, width],
    ...], "mask": BoolTensor(B,1,H,W)}`` (True inside the box).
    """
    clean = check_images(clean)
    as_generator(generator)  # validated for a uniform interface; no draw is needed
    if not 0 <= area_ratio <= 1:
        raise ValueError(f"area_ratio must lie in [0,1], got {area_ratio}")
    if not 0 <= fill <= 1:
        raise ValueError(f"fill must lie in [0,1], got {fill}")
    b, _, h, w = clean.shape
    side = math.sqrt(area_ratio)
    bh, bw = round(h * side), round(w * side)
    top, left = (h - bh) // 2, (w - bw) // 2
    mask = torch.zeros((b, 1, h, w), dtype=torch.bool, device=clean.device)
    mask[:, :, top : top + bh, left : left + bw] = True
    masked = torch.where(mask, torch.full((), fill, dtype=clean.dtype), clean)
    params = {
        "area_ratio": [float(area_ratio)] * b,
        "box": [[top, left, bh, bw]] * b,
        "mask": mask,
    }
    return masked, params
