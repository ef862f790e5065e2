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


def _prepare(pred: Tensor, target: Tensor, who: str) -> tuple[Tensor, Tensor]:
    """Validate a (pred, target) pair and return both clipped to [0, 1] in float64."""
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
    # Contiguous float64 copies: model outputs may be channels-last, which slows every pass.
    pred = pred.detach().to(torch.float64, memory_format=torch.contiguous_format)
    target = target.detach().to(torch.float64, memory_format=torch.contiguous_format)
    if pred.numel() == 0:
        return pred, target
    if torch.isnan(pred).any():
        raise ValueError(f"{who}: pred contains NaN")
    lo, hi = (v.item() for v in torch.aminmax(target))  # NaN propagates into both
    if math.isnan(lo):
        raise ValueError(f"{who}: target contains NaN")
    if lo < -_RANGE_TOL or hi > 1 + _RANGE_TOL:
        raise ValueError(
            f"{who}: target must be in [0, 1], got values in [{lo:.4g}, {hi:.4g}] "
            "(0-255 images must be divided by 255)"
        )
    # The official PromptIR/AdaIR test code clips both images before measuring. Out of place:
    # ``to`` returns the caller's own tensor when it is already contiguous float64.
    return pred.clamp(0.0, 1.0), target.clamp(0.0, 1.0)


def _psnr(pred: Tensor, target: Tensor, spec: _Protocol) -> Tensor:
    mse = (pred - target).square().mean(dim=(1, 2, 3))
    # Data range 1, so PSNR = -10 log10(MSE); log10(0) = -inf gives +inf for identical images.
    return -10.0 * torch.log10(mse + spec.psnr_eps)


def _window(spec: _Protocol) -> list[float]:
    """1-D taps; the 2-D window is their outer product (exact for both window kinds)."""
    if spec.window == "uniform":
        return [1.0 / spec.win_size] * spec.win_size
    r = spec.win_size // 2
    taps = [math.exp(-0.5 * (i / spec.sigma) ** 2) for i in range(-r, r + 1)]
    total = math.fsum(taps)
    return [t / total for t in taps]


def _filter_valid(x: Tensor, taps: list[float]) -> Tensor:
    """Separable correlation of the last two dims with ``taps``, 'valid' region only.

    Shift-and-add rather than conv2d: depthwise float64 convolutions are several times slower
    on CPU, and this touches each element once per tap.
    """
    k = len(taps)
    # Rows first: those shifts are whole contiguous rows (about 10% faster than columns first).
    for dim in (-2, -1):
        n = x.shape[dim] - k + 1
        out = x.narrow(dim, 0, n) * taps[0]
        for i in range(1, k):
            out.add_(x.narrow(dim, i, n), alpha=taps[i])
        x = out
    return x


def _ssim_sum(x: Tensor, y: Tensor, spec: _Protocol, taps: list[float], rng: float) -> Tensor:
    """Per-image sum of the SSIM map over the 'valid' region of one tile of rows."""
    c = x.shape[1]
    stats = _filter_valid(torch.cat([x, y, x * x, y * y, x * y], dim=1), taps)
    mu_x, mu_y, e_xx, e_yy, e_xy = stats.split(c, dim=1)
    n = spec.win_size**2
    cov_norm = n / (n - 1) if spec.sample_covariance else 1.0
    mu_xx, mu_yy, mu_xy = mu_x.square(), mu_y.square(), mu_x * mu_y
    var_x = (e_xx - mu_xx).mul_(cov_norm)
    var_y = (e_yy - mu_yy).mul_(cov_norm)
    cov_xy = (e_xy - mu_xy).mul_(cov_norm)
    c1, c2 = (_K1 * rng) ** 2, (_K2 * rng) ** 2
    luminance = (2.0 * mu_xy + c1).div_(mu_xx.add_(mu_yy).add_(c1))
    cs = (2.0 * cov_xy + c2).div_(var_x.add_(var_y).add_(c2))
    if spec.clamp_cs:
        cs = cs.clamp_(min=0.0)
    return luminance.mul_(cs).sum(dim=(1, 2, 3))


def _to_luma_uint8(x: Tensor) -> Tensor:
    """pyiqa's SSIM input: round(255 * Y of YIQ) for RGB, round(255 * x) otherwise."""
    if x.shape[1] == 3:
        r, g, b = x.unbind(dim=1)
        x = (r * _YIQ_Y[0] + g * _YIQ_Y[1] + b * _YIQ_Y[2]).unsqueeze(1)
    return (x * 255.0).round()


def _ssim(pred: Tensor, target: Tensor, spec: _Protocol, protocol: str) -> Tensor:
    h, w = pred.shape[-2:]
    if h < spec.win_size or w < spec.win_size:
        raise ValueError(
            f"ssim ({protocol} protocol) needs images of at least {spec.win_size}x"
            f"{spec.win_size} pixels (its window), got {h}x{w}"
        )
    rng = 1.0
    if spec.luma_uint8:
        pred, target = _to_luma_uint8(pred), _to_luma_uint8(target)
        rng = 255.0
    taps = _window(spec)
    b, c = pred.shape[:2]
    k = spec.win_size
    out_h, out_w = h - k + 1, w - k + 1
    # Work on tiles of a few MB so the ~20 passes over the statistics stay in cache on CPU
    # (about 2x faster than whole images); the GPU prefers few large launches.
    budget = _TILE_ELEMENTS_CPU if pred.device.type == "cpu" else _TILE_ELEMENTS_GPU
    row_elements = 5 * c * w
    if h * row_elements <= budget:
        step, rows = max(1, budget // (h * row_elements)), out_h
    else:
        step, rows = 1, max(1, budget // row_elements - (k - 1))
    sums = []
    for i in range(0, b, step):
        total = pred.new_zeros(min(step, b - i))
        for r0 in range(0, out_h, rows):
            r1 = min(out_h, r0 + rows) + k - 1
            total += _ssim_sum(
                pred[i : i + step, :, r0:r1], target[i : i + step, :, r0:r1], spec, taps, rng
            )
        sums.append(total)
    if not sums:
        return pred.new_zeros(0)
    # Every channel has the same pixel count, so this equals skimage's mean of channel means.
    return torch.cat(sums) / (c * out_h * out_w)


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
    pred, target = _prepare(pred, target, "psnr")
    return _psnr(pred, target, spec)


def ssim(pred: Tensor, target: Tensor, protocol: str = "promptir") -> Tensor:
    """Per-image SSIM, shape ``(B,)`` float64; see the module docstring for each protocol.

    Images must be at least as large as the window: 7x7 (``promptir``), 11x11 (others).

    Example:
        >>> t = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
        >>> ssim(t, t).tolist()
        [1.0, 1.0]
    """
    spec = _spec(protocol)
    pred, target = _prepare(pred, target, "ssim")
    return _ssim(pred, target, spec, protocol)


def psnr_ssim(pred: Tensor, target: Tensor, protocol: str = "promptir") -> tuple[Tensor, Tensor]:
    """Both metrics in one call (inputs validated and clipped once): ``(psnr, ssim)``.

    Example:
        >>> t = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
        >>> p, s = psnr_ssim((t + 0.05).clamp(0, 1), t, "gaussian")
        >>> 20 < p.item() < 40 and 0 < s.item() < 1
        True
    """
    spec = _spec(protocol)
    pred, target = _prepare(pred, target, "psnr_ssim")
    return _psnr(pred, target, spec), _ssim(pred, target, spec, protocol)
