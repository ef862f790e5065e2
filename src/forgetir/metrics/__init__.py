"""PSNR and SSIM under named protocols: batched in torch, one value per image.

Published restoration numbers are not comparable unless they were measured the same way, so
every number this library prints is tied to one of three protocols (docs/proof.md, "Metric
protocols"):

``promptir`` (default)
    What the PromptIR/AdaIR test code reports (and so the seed paper's tables): RGB, data range
    1, both images clipped to [0, 1]; PSNR from the per-image MSE; SSIM with scikit-image's
    defaults (7x7 uniform window, sample covariance, K1 0.01, K2 0.03, a 3-pixel border
    excluded from the mean), averaged over the channels. Those scripts also centre-crop
    every image to a multiple of 16 before inference: see :func:`crop_to_multiple`.
``pyiqa``
    IQA-PyTorch's ``psnr`` and ``ssim`` metrics at their defaults. PSNR on RGB, data range 1,
    with pyiqa's ``1e-8`` added to the MSE. SSIM on the Y channel of YIQ (single-channel
    images as they are) scaled to [0, 255] and rounded, an 11x11 Gaussian window (sigma 1.5,
    MATLAB ``fspecial``), 'valid' filtering, no downsampling (pyiqa's ``downsample`` option is
    off by default) and the contrast-structure term clamped at 0 as pyiqa does. pyiqa works in
    the input dtype (float32, usually) and this module in float64, so expect differences of
    the size of float32 rounding (a Y value within rounding error of .5 may round the other
    way).
``gaussian``
    The window of Wang et al. (2004) through scikit-image (``gaussian_weights=True``): RGB, data
    range 1, 11x11 Gaussian (sigma 1.5, truncate 3.5), population covariance, a 5-pixel border
    excluded from the mean.

All functions take ``(B, C, H, W)`` float tensors in [0, 1] and return a float64 tensor of
shape ``(B,)``, one value per image: average it yourself. (torchmetrics' default PSNR pools the
MSE over the whole batch, which is a different number.) Identical images have PSNR ``inf``
under ``promptir`` and ``gaussian`` (as scikit-image) and 80 dB under ``pyiqa`` (its epsilon);
callers that average must decide what to do with ``inf``.

Everything is computed in float64 so results agree with scikit-image to ~1e-12 whatever the
input dtype. Filtering is 'valid' (no padding): scikit-image filters with reflect padding and
then crops ``(win - 1) // 2`` pixels, which leaves exactly the 'valid' region.

Example:
    >>> import torch
    >>> from forgetir.metrics import psnr_ssim
    >>> target = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    >>> p, s = psnr_ssim((target + 0.01).clamp(0, 1), target)
    >>> p.shape, bool((s > 0.9).all())
    (torch.Size([2]), True)
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import Tensor

from forgetir.metrics._kernels import _BoxTile, _make_filter, _Protocol, _Scratch, _tile_metrics

__all__ = ["PROTOCOLS", "crop_to_multiple", "describe_protocol", "psnr", "psnr_ssim", "ssim"]

PROTOCOLS = ("promptir", "pyiqa", "gaussian")


_SPECS = {
    "promptir": _Protocol(
        window="uniform",
        win_size=7,
        sigma=0.0,
        sample_covariance=True,
        luma_uint8=False,
        clamp_cs=False,
        psnr_eps=0.0,
        description=(
            "PSNR/SSIM, promptir protocol: RGB, range 1, clipped to [0,1], "
            "SSIM 7x7 uniform (skimage defaults), per-image mean"
        ),
    ),
    "pyiqa": _Protocol(
        window="gaussian",
        win_size=11,
        sigma=1.5,
        sample_covariance=False,
        luma_uint8=True,
        clamp_cs=True,
        psnr_eps=1e-8,
        description=(
            "PSNR/SSIM, pyiqa protocol: clipped to [0,1], PSNR RGB range 1 (+1e-8 on MSE), "
            "SSIM on Y of YIQ x255 rounded, 11x11 Gaussian sigma 1.5, 'valid', per-image mean"
        ),
    ),
    "gaussian": _Protocol(
        window="gaussian",
        win_size=11,
        sigma=1.5,
        sample_covariance=False,
        luma_uint8=False,
        clamp_cs=False,
        psnr_eps=0.0,
        description=(
            "PSNR/SSIM, gaussian protocol: RGB, range 1, clipped to [0,1], "
            "SSIM 11x11 Gaussian sigma 1.5 (Wang et al.; skimage gaussian_weights), "
            "5-px border excluded, per-image mean"
        ),
    ),
}

# Float64 elements of the stacked SSIM statistics per tile (s = x + y, d = x - y, s*s and d*d
# of the tile's channels): ~1 MB on CPU, so that a tile and its filtered rows stay in a core's
# cache, ~512 MB on accelerators. Tiling changes no value beyond float64 summation order and
# bounds peak memory on large batches.
_TILE_ELEMENTS_CPU = 1 << 17
_TILE_ELEMENTS_GPU = 1 << 26
# Tolerance on the target range before it is clipped: catches 0-255 images, not rounding noise.
_RANGE_TOL = 1e-3


def _spec(protocol: str) -> _Protocol:
    if protocol not in _SPECS:
        raise ValueError(
            f"unknown metric protocol {protocol!r}; valid protocols: {', '.join(PROTOCOLS)}"
        )
    return _SPECS[protocol]


def describe_protocol(protocol: str = "promptir") -> str:
    """One line describing ``protocol``, to print next to every number measured under it.

    Example:
        >>> describe_protocol("promptir").startswith("PSNR/SSIM, promptir protocol")
        True
    """
    return _spec(protocol).description


def crop_to_multiple(x: Tensor, m: int = 16) -> Tensor:
    """Centre-crop the last two dims of ``x`` to multiples of ``m`` (a view, no copy).

    Reproduces the PromptIR test loaders' ``crop_img``: the odd pixel of an odd remainder is
    dropped at the bottom/right. Apply it to degraded input and ground truth alike.

    Example:
        >>> crop_to_multiple(torch.zeros(1, 3, 321, 481)).shape
        torch.Size([1, 3, 320, 480])
    """
    if isinstance(m, bool) or not isinstance(m, int) or m < 1:
        raise ValueError(f"crop_to_multiple: m must be a positive int, got {m!r}")
    if x.dim() < 2:
        raise ValueError(f"crop_to_multiple: expected (..., H, W), got shape {tuple(x.shape)}")
    h, w = x.shape[-2:]
    if h < m or w < m:
        raise ValueError(
            f"crop_to_multiple: image of {h}x{w} pixels is smaller than the multiple {m}"
        )
    top, left = (h % m) // 2, (w % m) // 2
    return x[..., top : top + h - h % m, left : left + w - w % m]


def _prepare(pred: Tensor, target: Tensor, who: str) -> tuple[Tensor, Tensor, tuple[bool, bool]]:
    """Validate a (pred, target) pair: both detached, contiguous, dtype unchanged, and
    whether each has values outside [0, 1] (so needs clipping).

    Conversion to float64 and clipping happen tile by tile in :func:`_measure`: converting
    whole batches up front costs more than the metrics (fresh multi-MB buffers page-fault).
    """
    for name, t in (("pred", pred), ("target", target)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{who}: {name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() != 4:
            raise ValueError(
                f"{who}: {name} must be (B, C, H, W), got shape {tuple(t.shape)} "
                "(use x.unsqueeze(0) for a single image)"
            )
        if not t.is_floating_point():
            raise ValueError(
                f"{who}: {name} must be a float tensor in [0, 1], got dtype {t.dtype} "
                "(divide uint8 images by 255)"
            )
    if pred.shape != target.shape:
        raise ValueError(
            f"{who}: pred and target shapes differ: pred {tuple(pred.shape)}, "
            f"target {tuple(target.shape)}"
        )
    if pred.device != target.device:
        raise ValueError(f"{who}: pred is on {pred.device} but target is on {target.device}")
    # Model outputs may be channels-last, which slows every pass over rows.
    pred = pred.detach().contiguous()
    target = target.detach().contiguous()
    if pred.numel() == 0:
        return pred, target, (False, False)
    # One cheap pass in the input dtype; NaN propagates into both bounds.
    p_lo, p_hi = (v.item() for v in torch.aminmax(pred))
    if math.isnan(p_lo):
        raise ValueError(f"{who}: pred contains NaN")
    lo, hi = (v.item() for v in torch.aminmax(target))
    if math.isnan(lo):
        raise ValueError(f"{who}: target contains NaN")
    if lo < -_RANGE_TOL or hi > 1 + _RANGE_TOL:
        raise ValueError(
            f"{who}: target must be in [0, 1], got values in [{lo:.4g}, {hi:.4g}] "
            "(0-255 images must be divided by 255)"
        )
    return pred, target, (p_lo < 0.0 or p_hi > 1.0, lo < 0.0 or hi > 1.0)


def _tile_plan(shape: torch.Size, k: int, device: torch.device) -> tuple[int, int]:
    """(images, output rows) per tile so that the stacked statistics fit the budget."""
    b, c, h, w = shape
    out_h = max(1, h - k + 1)
    # Tiles of about a MB keep the ~15 passes over the statistics in cache on CPU (several
    # times faster than whole images); the GPU prefers few large launches.
    budget = _TILE_ELEMENTS_CPU if device.type == "cpu" else _TILE_ELEMENTS_GPU
    row_elements = 4 * c * w
    if h * row_elements <= budget:
        return max(1, budget // (h * row_elements)), out_h
    return 1, max(1, budget // row_elements - (k - 1))


def _measure(
    pred: Tensor,
    target: Tensor,
    clip: tuple[bool, bool],
    spec: _Protocol,
    protocol: str,
    want_ssim: bool,
) -> tuple[Tensor, Tensor | None]:
    """Per-image (PSNR, SSIM or None) in one tiled pass over validated inputs."""
    b, c, h, w = pred.shape
    k = spec.win_size
    if want_ssim and (h < k or w < k):
        raise ValueError(
            f"ssim ({protocol} protocol) needs images of at least {k}x{k} pixels (its window), "
            f"got {h}x{w}"
        )
    cs = 1 if spec.luma_uint8 and c == 3 else c  # channels SSIM is measured on
    # One channel per tile (pyiqa's luma needs all three): taller tiles for the same budget,
    # so fewer rows are filtered twice at tile borders.
    cg = c if spec.luma_uint8 else 1
    filt = _make_filter(spec, min(cs, cg), pred.device) if want_ssim else None
    out_h = h - k + 1 if want_ssim else h
    halo = k - 1 if want_ssim else 0
    # Planned by the channels filtered (pyiqa loads RGB, then filters one luma channel).
    step, rows = _tile_plan(torch.Size((b, min(cg, cs), h, w)), k, pred.device)
    # Per-image sums, one tensor per group of images (a batch of 0 gives empty results).
    empty = torch.zeros(0, dtype=torch.float64, device=pred.device)
    sse_parts, ssim_parts = [empty], [empty]
    scratch, box_tiles = _Scratch(pred.device), {}
    for i in range(0, b, step):
        j = min(b, i + step)
        tile_sse = tile_ssim = 0.0
        for ch, r0 in itertools.product(range(0, c, cg), range(0, out_h, rows)):
            last = r0 + rows >= out_h
            # A tile reads rows [r0, r1) and owns [r0, r0 + own) for PSNR, so that every
            # row counts once: the last tile owns everything left, halo included.
            r1 = h if last else r0 + rows + halo
            own = r1 - r0 if last else rows
            p_tile, t_tile = pred[i:j, ch : ch + cg, r0:r1], target[i:j, ch : ch + cg, r0:r1]
            if filt is not None and filt.box:
                # Tiles of one shape share their views (most tiles have the same shape).
                key = (j - i, r1 - r0, own)
                if key not in box_tiles:
                    box_tiles[key] = _BoxTile(p_tile.shape, own, spec, filt, scratch)
                part_sse, part_ssim = box_tiles[key](p_tile, t_tile, clip)
            else:
                part_sse, part_ssim = _tile_metrics(p_tile, t_tile, own, spec, filt, clip, scratch)
            tile_sse = tile_sse + part_sse
            if part_ssim is not None:
                tile_ssim = tile_ssim + part_ssim
        sse_parts.append(tile_sse)
        if want_ssim:
            ssim_parts.append(tile_ssim)
    sse, ssim_sum = torch.cat(sse_parts), torch.cat(ssim_parts)
    # Data range 1, so PSNR = -10 log10(MSE); log10(0) = -inf gives +inf for identical images.
    psnr_vals = -10.0 * torch.log10(sse / (c * h * w) + spec.psnr_eps)
    if not want_ssim:
        return psnr_vals, None
    # Every channel has the same pixel count, so this equals skimage's mean of channel means.
    return psnr_vals, ssim_sum / (cs * out_h * (w - k + 1))


def psnr(pred: Tensor, target: Tensor, protocol: str = "promptir") -> Tensor:
    """Per-image PSNR in dB, shape ``(B,)`` float64; ``inf`` for identical images.

    ``pred`` and ``target`` are ``(B, C, H, W)`` in [0, 1]; ``pred`` is clipped first.
    Under ``pyiqa`` identical images give 80 dB instead of ``inf`` (pyiqa adds 1e-8 to the MSE).

    Example:
        >>> t = torch.full((1, 3, 8, 8), 0.5)
        >>> round(psnr(t + 0.1, t).item(), 3)
        20.0
    """
    spec = _spec(protocol)
    pred, target, clip = _prepare(pred, target, "psnr")
    return _measure(pred, target, clip, spec, protocol, want_ssim=False)[0]


def ssim(pred: Tensor, target: Tensor, protocol: str = "promptir") -> Tensor:
    """Per-image SSIM, shape ``(B,)`` float64; see the module docstring for each protocol.

    Images must be at least as large as the window: 7x7 (``promptir``), 11x11 (others).

    Example:
        >>> t = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
        >>> ssim(t, t).tolist()
        [1.0, 1.0]
    """
    spec = _spec(protocol)
    pred, target, clip = _prepare(pred, target, "ssim")
    return _measure(pred, target, clip, spec, protocol, want_ssim=True)[1]


def psnr_ssim(pred: Tensor, target: Tensor, protocol: str = "promptir") -> tuple[Tensor, Tensor]:
    """Both metrics in one call (inputs validated and clipped once): ``(psnr, ssim)``.

    Example:
        >>> t = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
        >>> p, s = psnr_ssim((t + 0.05).clamp(0, 1), t, "gaussian")
        >>> 20 < p.item() < 40 and 0 < s.item() < 1
        True
    """
    spec = _spec(protocol)
    pred, target, clip = _prepare(pred, target, "psnr_ssim")
    p, s = _measure(pred, target, clip, spec, protocol, want_ssim=True)
    return p, s
