"""Synthetic light rain, standing in for Rain100L (one layer of thin streaks).

Recipe: sparse random impulses, a slight Gaussian blur, a motion blur along a line (one length
and angle per image), scaled by an intensity and added to every channel, then clipped to [0,1].
The blur and the motion blur are one kernel per image (a line whose cross-section is a
Gaussian), applied with an FFT convolution so that batches stay fast.

Parameters drawn per image (uniformly in the ranges below): ``density`` (share of pixels that
start a streak), ``length`` (pixels, integer), ``angle`` (degrees from vertical, positive leans
right at the bottom), ``intensity`` (peak brightness a full-strength streak adds). The ranges
keep the rain light: on the shipped photos, rainy vs clean PSNR averages about 26-27 dB
(21-33 dB per image), against about 15 dB for ``denoise_50``.

Example:
    >>> import torch
    >>> from forgetir.degradations.rain import add_rain
    >>> rainy, params = add_rain(torch.zeros(1, 3, 64, 64), generator=0)
    >>> sorted(params)
    ['angle', 'density', 'intensity', 'length']
    >>> bool(rainy.max() > 0)
    True
"""

from __future__ import annotations

import math
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

DENSITY_RANGE: tuple[float, float] = (0.0015, 0.004)
LENGTH_RANGE: tuple[int, int] = (15, 31)
ANGLE_RANGE: tuple[float, float] = (-15.0, 15.0)
INTENSITY_RANGE: tuple[float, float] = (0.15, 0.35)
# Standard deviation (pixels) of the slight blur: streaks come out about 2 px wide.
STREAK_BLUR: float = 0.6
# Each impulse's own strength, so that streaks in one image are not all equally bright.
IMPULSE_RANGE: tuple[float, float] = (0.4, 1.0)


def streak_kernels(
    length: Sequence[float], angle: Sequence[float], blur: float = STREAK_BLUR
) -> Tensor:
    """Per-image streak kernels (B,1,K,K), peak 1: a line of ``length`` px at ``angle``
    degrees from vertical, with a Gaussian cross-section of std ``blur`` px and soft ends.

    Example:
        >>> k = streak_kernels([21.0], [0.0])
        >>> k.shape[0], float(k.max())
        (1, 1.0)
    """
    lengths = torch.tensor(list(length), dtype=torch.float32)
    theta = torch.tensor(list(angle), dtype=torch.float32) * (math.pi / 180)
    half = int(math.ceil(float(lengths.max()) / 2 + 3 * blur)) + 1
    r = torch.arange(-half, half + 1, dtype=torch.float32)
    y, x = torch.meshgrid(r, r, indexing="ij")
    s, c = theta.sin().view(-1, 1, 1), theta.cos().view(-1, 1, 1)
    along = x * s + y * c  # coordinate along the streak (y grows downwards)
    perp = x * c - y * s
    cross = torch.exp(-0.5 * (perp / blur) ** 2)
    # one-pixel soft ends: anti-aliased segment of the requested length
    ends = (lengths.view(-1, 1, 1) / 2 + 0.5 - along.abs()).clamp(0, 1)
    k = cross * ends
    k = k / k.amax(dim=(1, 2), keepdim=True)
    return k.unsqueeze(1)


def _fft_conv_same(x: Tensor, k: Tensor) -> Tensor:
    """Per-image 'same' convolution of x (B,1,H,W) with k (B,1,K,K), K odd."""
    h, w = x.shape[-2:]
    ks = k.shape[-1]
    size = (h + ks - 1, w + ks - 1)  # linear, not circular, convolution
    out = torch.fft.irfft2(torch.fft.rfft2(x, s=size) * torch.fft.rfft2(k, s=size), s=size)
    p = ks // 2
    return out[..., p : p + h, p : p + w]


def _draw(gen: torch.Generator, b: int, lo: float, hi: float) -> list[float]:
    return (lo + (hi - lo) * torch.rand(b, generator=gen, dtype=torch.float64)).tolist()


@register_degradation("rain")
def add_rain(
    clean: Tensor,
    generator: torch.Generator | int,
    density: float | Sequence[float] | None = None,
    length: float | Sequence[float] | None = None,
    angle: float | Sequence[float] | None = None,
    intensity: float | Sequence[float] | None = None,
) -> tuple[Tensor, dict[str, Any]]:
    """Add one layer of rain streaks; parameters left as None are drawn per image.

    Draw order from the generator: density, length, angle, intensity (one value per image
    each, drawn even when given so the streak field does not depend on which were given),
    then the impulse positions and strengths for the whole batch.
    """
    clean = check_images(clean)
    gen = as_generator(generator)
    b, _, h, w = clean.shape
    drawn = {
        "density": _draw(gen, b, *DENSITY_RANGE),
        "length": [
            float(v)
            for v in torch.randint(LENGTH_RANGE[0], LENGTH_RANGE[1] + 1, (b,), generator=gen)
        ],
        "angle": _draw(gen, b, *ANGLE_RANGE),
        "intensity": _draw(gen, b, *INTENSITY_RANGE),
    }
    given = {"density": density, "length": length, "angle": angle, "intensity": intensity}
    params: dict[str, Any] = {}
    for name, value in given.items():
        params[name] = per_image(value, b, name) or drawn[name]
    if any(not 0 <= d <= 1 for d in params["density"]):
        raise ValueError(f"density must lie in [0,1], got {params['density']}")
    if any(v < 1 for v in params["length"]):
        raise ValueError(f"length must be >= 1 pixel, got {params['length']}")

    u = torch.rand((b, 1, h, w), generator=gen)
    strength = torch.empty((b, 1, h, w)).uniform_(*IMPULSE_RANGE, generator=gen)
    dens = torch.tensor(params["density"], dtype=torch.float32).view(b, 1, 1, 1)
    impulses = torch.where(u < dens, strength, torch.zeros(()))
    kernels = streak_kernels(params["length"], params["angle"])
    dev = clean.device
    streaks = _fft_conv_same(impulses.to(dev), kernels.to(dev)).clamp_min(0)
    amp = torch.tensor(params["intensity"], dtype=torch.float32, device=dev).view(b, 1, 1, 1)
    rainy = (clean.float() + amp * streaks).clamp(0, 1).to(clean.dtype)
    return rainy, params
