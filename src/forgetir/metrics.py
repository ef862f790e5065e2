"""PSNR and SSIM under named protocols: batched in torch, one value per image.

Published restoration numbers are not comparable unless they were measured the same way, so
every number this library prints is tied to one of three protocols (design notes, section 7):

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

import math
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["PROTOCOLS", "crop_to_multiple", "describe_protocol", "psnr", "psnr_ssim", "ssim"]

PROTOCOLS = ("promptir", "pyiqa", "gaussian")


@dataclass(frozen=True)
class _Protocol:
    window: str  # "uniform" or "gaussian"
    win_size: int
    sigma: float
    sample_covariance: bool
    luma_uint8: bool  # SSIM on round(255 * Y of YIQ), as pyiqa
    clamp_cs: bool  # pyiqa clamps the contrast-structure term at 0
    psnr_eps: float  # added to the MSE (pyiqa); 0 gives inf for identical images
    description: str


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

_K1, _K2 = 0.01, 0.03
# ITU-R 601 luma weights, the Y row of pyiqa's rgb2yiq.
_YIQ_Y = (0.299, 0.587, 0.114)
# Float64 elements of the stacked SSIM statistics per tile (x, y, x*x, y*y, x*y over all
# channels): ~4 MB on CPU to stay in cache, ~512 MB on accelerators. Tiling changes no value
# beyond float64 summation order and bounds peak memory on large batches.
_TILE_ELEMENTS_CPU = 1 << 19
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


def _window(spec: _Protocol) -> list[float]:
    """1-D taps; the 2-D window is their outer product (exact for both window kinds)."""
    if spec.window == "uniform":
        return [1.0] * spec.win_size  # plain sums: the 1/k**2 is folded into the formula
    r = spec.win_size // 2
    taps = [math.exp(-0.5 * (i / spec.sigma) ** 2) for i in range(-r, r + 1)]
    total = math.fsum(taps)
    return [t / total for t in taps]


def _box_sum(x: Tensor, k: int, dim: int) -> Tensor:
    """Sums of ``k`` consecutive elements along ``dim`` ('valid' region), by doubling.

    Sums of 2, 4, 8... neighbours are built from the previous ones and the binary digits of
    ``k`` combined: 4 passes for k = 7 instead of the 7 of shift-and-add, and each value is
    still a sum of ``k`` terms (no cumulative-sum cancellation).
    """
    n = x.shape[dim]
    out, covered = None, 0  # out holds sums of ``covered`` elements starting at each index
    power, span = x, 1  # power holds sums of ``span`` elements
    while True:
        if k & span:
            if out is None:
                out, covered = power, span
            else:
                m = n - covered - span + 1
                out = out.narrow(dim, 0, m) + power.narrow(dim, covered, m)
                covered += span
        if span * 2 > k:
            break
        m = n - 2 * span + 1
        power = power.narrow(dim, 0, m) + power.narrow(dim, span, m)
        span *= 2
    return out.narrow(dim, 0, n - k + 1)


def _filter_valid(x: Tensor, taps: list[float]) -> Tensor:
    """Separable correlation of the last two dims with ``taps``, 'valid' region only.

    Shift-and-add rather than conv2d: depthwise float64 convolutions are several times slower
    on CPU. A uniform window (all taps 1) takes the cheaper :func:`_box_sum`.
    """
    k = len(taps)
    if all(t == 1.0 for t in taps):
        # Columns by one strided reduction (its inner loop runs along whole rows), then rows
        # by doubling: the fastest pair measured (benchmarks/bench_metrics.py).
        return _box_sum(x.unfold(-2, k, 1).sum(dim=-1), k, -1)
    # Rows first: those shifts are whole contiguous rows (about 10% faster than columns first).
    for dim in (-2, -1):
        n = x.shape[dim] - k + 1
        out = x.narrow(dim, 0, n) * taps[0]
        for i in range(1, k):
            out.add_(x.narrow(dim, i, n), alpha=taps[i])
        x = out
    return x


def _ssim_sum(stats: Tensor, spec: _Protocol, taps: list[float], rng: float) -> Tensor:
    """Per-image sum of the SSIM map over the 'valid' region of one tile of rows.

    ``stats`` stacks s = x + y, d = x - y, s*s and d*d along the channels. Four filtered
    statistics instead of the usual five (x, y, x*x, y*y, x*y), since
    ``mu_s**2 -/+ mu_d**2 = 4 mu_x mu_y`` / ``2 (mu_x**2 + mu_y**2)`` and
    ``var_s -/+ var_d = 4 cov_xy`` / ``2 (var_x + var_y)``: SSIM's luminance term is
    ``(mu_s**2 - mu_d**2 + 2 c1) / (mu_s**2 + mu_d**2 + 2 c1)`` and likewise its
    contrast-structure term with the variances and ``c2``.
    """
    c = stats.shape[1] // 4
    filtered = _filter_valid(stats, taps)
    # The filter gives g times the local means (g = the window's pixel count for plain sums).
    g = math.fsum(taps) ** 2
    n = spec.win_size**2
    cov_norm = n / (n - 1) if spec.sample_covariance else 1.0
    means, squares = filtered.split(2 * c, dim=1)
    m2 = means * means  # g**2 mu_s**2, g**2 mu_d**2 (a multiply is faster than pow)
    v = squares.sub_(m2, alpha=1.0 / g)  # g var_s / cov_norm, g var_d / cov_norm
    c1, c2 = (_K1 * rng) ** 2, (_K2 * rng) ** 2
    k1, k2 = 2.0 * c1 * g * g, 2.0 * c2 * g / cov_norm
    ms, md = m2.split(c, dim=1)
    vs, vd = v.split(c, dim=1)
    ms.add_(k1)
    vs.add_(k2)
    lum_num, cs_num = ms - md, vs - vd
    lum_den, cs_den = ms.add_(md), vs.add_(vd)
    if spec.clamp_cs:
        cs_num = cs_num.clamp_(min=0.0)  # the denominator is positive
    return lum_num.mul_(cs_num).div_(lum_den.mul_(cs_den)).sum(dim=(1, 2, 3))


def _to_luma_uint8(x: Tensor) -> Tensor:
    """pyiqa's SSIM input: round(255 * Y of YIQ) for RGB, round(255 * x) otherwise."""
    if x.shape[1] == 3:
        r, g, b = x.unbind(dim=1)
        x = (r * _YIQ_Y[0] + g * _YIQ_Y[1] + b * _YIQ_Y[2]).unsqueeze(1)
    return (x * 255.0).round()


def _tile_plan(shape: torch.Size, k: int, device: torch.device) -> tuple[int, int]:
    """(images, output rows) per tile so that the stacked statistics fit the budget."""
    b, c, h, w = shape
    out_h = max(1, h - k + 1)
    # Tiles of a few MB keep the ~20 passes over the statistics in cache on CPU (several
    # times faster than whole images); the GPU prefers few large launches.
    budget = _TILE_ELEMENTS_CPU if device.type == "cpu" else _TILE_ELEMENTS_GPU
    row_elements = 4 * c * w
    if h * row_elements <= budget:
        return max(1, budget // (h * row_elements)), out_h
    return 1, max(1, budget // row_elements - (k - 1))


def _tile_metrics(
    pred: Tensor,
    target: Tensor,
    own: int,
    spec: _Protocol,
    taps: list[float] | None,
    clip: tuple[bool, bool],
) -> tuple[Tensor, Tensor | None]:
    """One tile of rows -> per image (sum of squared errors over its first ``own`` rows,
    sum of the SSIM map over its 'valid' region, or None when ``taps`` is None)."""
    b, c, h, w = pred.shape
    stats = torch.empty(b, 4 * c, h, w, dtype=torch.float64, device=pred.device)
    x, y = stats[:, :c], stats[:, c : 2 * c]
    x.copy_(pred)
    y.copy_(target)
    for t, needed in zip((x, y), clip, strict=True):
        if needed:  # the official test code clips both images; a no-op pass is skipped
            t.clamp_(0.0, 1.0)
    if spec.luma_uint8 or taps is None:
        sse = (x - y)[:, :, :own].square().sum(dim=(1, 2, 3))
        if taps is None:
            return sse, None
        # pyiqa: PSNR on RGB above, SSIM on the rounded luma (one channel for RGB).
        x, y = _to_luma_uint8(x), _to_luma_uint8(y)
        c = x.shape[1]
        stats = stats[:, : 4 * c]
        stats[:, :c].copy_(x)
        stats[:, c : 2 * c].copy_(y)
        x, y = stats[:, :c], stats[:, c : 2 * c]
    # d = y - x in place of y (only d's squares and squared means are used, so its sign is
    # free), then s = 2x + d = x + y in place of x: two passes, no temporary.
    d = y.sub_(x)
    torch.add(d, x, alpha=2.0, out=x)
    squares = torch.mul(stats[:, : 2 * c], stats[:, : 2 * c], out=stats[:, 2 * c :])
    if not spec.luma_uint8:
        sse = squares[:, c:, :own].sum(dim=(1, 2, 3))
    rng = 255.0 if spec.luma_uint8 else 1.0
    return sse, _ssim_sum(stats, spec, taps, rng)


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
    taps = _window(spec) if want_ssim else None
    out_h = h - k + 1 if want_ssim else h
    halo = k - 1 if want_ssim else 0
    step, rows = _tile_plan(pred.shape, k, pred.device)
    sse = torch.zeros(b, dtype=torch.float64, device=pred.device)
    ssim_sum = torch.zeros(b, dtype=torch.float64, device=pred.device)
    for i in range(0, b, step):
        j = min(b, i + step)
        for r0 in range(0, out_h, rows):
            last = r0 + rows >= out_h
            # A tile reads rows [r0, r1) and owns [r0, r0 + own) for PSNR, so that every
            # row counts once: the last tile owns everything left, halo included.
            r1 = h if last else r0 + rows + halo
            own = r1 - r0 if last else rows
            tile_sse, tile_ssim = _tile_metrics(
                pred[i:j, :, r0:r1], target[i:j, :, r0:r1], own, spec, taps, clip
            )
            sse[i:j] += tile_sse
            if tile_ssim is not None:
                ssim_sum[i:j] += tile_ssim
    # Data range 1, so PSNR = -10 log10(MSE); log10(0) = -inf gives +inf for identical images.
    psnr_vals = -10.0 * torch.log10(sse / (c * h * w) + spec.psnr_eps)
    if not want_ssim:
        return psnr_vals, None
    cs = 1 if spec.luma_uint8 and c == 3 else c  # channels SSIM is measured on
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
