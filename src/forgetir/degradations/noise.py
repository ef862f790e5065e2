"""Additive white Gaussian noise, exactly as the BSD68 test protocol of PromptIR/AdaIR.

The official test reads a uint8 image ``u`` and computes
``clip(u + randn * sigma, 0, 255).astype(uint8)``: the cast *truncates* (floors the
non-negative values), it does not round. Here ``u = round(clean * 255)``, so a clean image that
came from a uint8 file is reproduced exactly, and the result is divided by 255 again.

Reproducibility: the Gaussian field is drawn from a CPU ``torch.Generator`` (float32, shape
(B,C,H,W), batch item after batch item) whatever the device of ``clean``, so a seed gives the
same noise on every machine. When ``sigma`` is None, per-image sigmas are drawn from
:data:`SIGMAS` first, then the noise.

Example:
    >>> import torch
    >>> from forgetir.degradations.noise import add_noise
    >>> noisy, params = add_noise(torch.full((2, 3, 4, 4), 0.5), 0, sigma=25)
    >>> params["sigma"], bool(((noisy * 255).round() == noisy * 255).all())
    ([25.0, 25.0], True)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from forgetir.degradations.registry import (
    as_generator,
    check_images,
    per_image,
    register_degradation,
)

# Noise levels of the seed paper (BSD68 sigma = 15, 25, 50 on the 0..255 scale).
SIGMAS: tuple[int, ...] = (15, 25, 50)


@register_degradation("noise")
def add_noise(
    clean: Tensor,
    generator: torch.Generator | int,
    sigma: float | Sequence[float] | None = None,
) -> tuple[Tensor, dict[str, Any]]:
    """Add Gaussian noise of standard deviation ``sigma`` (on the 0..255 scale).

    ``sigma``: one value, one per image, or None to draw each image's sigma from :data:`SIGMAS`.
    Returns the noisy batch (multiples of 1/255 in [0,1]) and ``{"sigma": [...]}``.
    """
    clean = check_images(clean)
    gen = as_generator(generator)
    b = clean.shape[0]
    sigmas = per_image(sigma, b, "sigma")
    if sigmas is None:
        idx = torch.randint(len(SIGMAS), (b,), generator=gen)
        sigmas = [float(SIGMAS[i]) for i in idx.tolist()]
    if any(s < 0 for s in sigmas):
        raise ValueError(f"sigma must be >= 0, got {sigmas}")
    noise = torch.randn(clean.shape, generator=gen, dtype=torch.float32).to(clean.device)
    s = torch.tensor(sigmas, dtype=torch.float32, device=clean.device).view(b, 1, 1, 1)
    u = (clean.float() * 255).round()
    # floor == the uint8 cast of the official code, since the clipped values are >= 0
    noisy = (u + noise * s).clamp(0, 255).floor()
    return (noisy / 255).to(clean.dtype), {"sigma": sigmas}
