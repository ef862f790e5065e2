"""The arithmetic behind :mod:`forgetir.metrics`: per-tile squared errors and SSIM sums.

Everything here works on one tile of rows of a batch, in float64, and returns per-image sums;
:func:`forgetir.metrics._measure` plans the tiles and turns the sums into means.

SSIM needs the windowed means of x, y, x*x, y*y and x*y. We filter four statistics instead,
s = x + y, d = x - y, s*s and d*d (``mu_s**2 -/+ mu_d**2 = 4 mu_x mu_y`` /
``2 (mu_x**2 + mu_y**2)``, and likewise the variances give the covariance). SSIM's constants
are folded into s*s before filtering and into the squared means after, so that four in-place
steps give the four terms of ``(A - B) (C - D) / ((A + B) (C + D))`` (see :class:`_SsimTail`).

Uniform windows (:class:`_BoxTile`) are filtered with a running sum along rows (one in-place
cumulative sum and one subtraction, whatever the window width) and a strided k-term sum down
columns. A difference of running sums carries the rounding of the few additions between its
two ends, relative to the running sum's size: ~1e-13 absolute on window sums of a few units
for rows of ~500 pixels, far inside the 1e-10 the tests ask of SSIM against scikit-image.
Tiles reuse float64 buffers (:class:`_Scratch`) and, for a repeated tile shape, every view:
fresh multi-MB tensors and per-op overhead cost more than the arithmetic at these sizes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

_K1, _K2 = 0.01, 0.03
# ITU-R 601 luma weights, the Y row of pyiqa's rgb2yiq.
_YIQ_Y = (0.299, 0.587, 0.114)


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


def _window(spec: _Protocol) -> list[float]:
    """1-D taps; the 2-D window is their outer product (exact for both window kinds)."""
    if spec.window == "uniform":
        return [1.0] * spec.win_size  # plain sums: the 1/k**2 is folded into the formula
    r = spec.win_size // 2
    taps = [math.exp(-0.5 * (i / spec.sigma) ** 2) for i in range(-r, r + 1)]
    total = math.fsum(taps)
    return [t / total for t in taps]


class _Scratch(dict):
    """Float64 buffers reused by the tiles of one measurement, by name.

    Fresh multi-MB tensors cost more than the arithmetic on them (the kernel zero-fills new
    pages), so each tile takes contiguous views of buffers sized by the first, largest tile.
    """

    def __init__(self, device: torch.device) -> None:
        super().__init__()
        self.device = device

    def get_view(self, name: str, *shape: int) -> Tensor:
        n = math.prod(shape)
        flat = self.get(name)
        if flat is None or flat.numel() < n:
            flat = self[name] = torch.empty(n, dtype=torch.float64, device=self.device)
        return flat[:n].view(shape)


def _filter_valid(x: Tensor, taps: list[float], scratch: _Scratch) -> Tensor:
    """Separable correlation of the last two dims with ``taps``, 'valid' region only.

    Shift-and-add rather than conv2d: depthwise float64 convolutions are several times slower
    on CPU. Rows first: those shifts are whole contiguous rows (about 10% faster).
    """
    k = len(taps)
    # Rows from the statistics, then columns from the rows back into their spent buffer.
    for dim, name in ((-2, "rows"), (-1, "stats")):
        n = x.shape[dim] - k + 1
        shape = list(x.shape)
        shape[dim] = n
        out = torch.mul(x.narrow(dim, 0, n), taps[0], out=scratch.get_view(name, *shape))
        for i in range(1, k):
            out.add_(x.narrow(dim, i, n), alpha=taps[i])
        x = out
    return x


@dataclass(frozen=True)
class _Filter:
    """What one measurement's tiles share: the window's taps, whether it is a plain box, and
    SSIM's constants as (1, 2c, 1, 1) planes for the c channels SSIM is measured on.

    With F_s = g mu_s and F_ss = g (E[s*s] + kappa) (g: the window's total weight, its pixel
    count for plain sums): ``F_s**2 + k1 = g**2 (mu_s**2 + 2 c1)`` and
    ``F_ss - (F_s**2 + k1) / g = g var_s + k2`` with ``k2 = 2 c2 g / cov_norm``: the luminance
    and contrast-structure terms of SSIM up to the common factor g**2 (resp. g).
    """

    taps: list[float]
    box: bool
    g: float
    k1: Tensor  # k1 for the s planes, 0 for the d planes
    kappa: Tensor  # kappa for the s planes, 0 for the d planes


def _make_filter(spec: _Protocol, c: int, device: torch.device) -> _Filter:
    taps = _window(spec)
    g = math.fsum(taps) ** 2
    n = spec.win_size**2
    cov_norm = n / (n - 1) if spec.sample_covariance else 1.0
    rng = 255.0 if spec.luma_uint8 else 1.0
    c1, c2 = (_K1 * rng) ** 2, (_K2 * rng) ** 2

    def planes(value: float) -> Tensor:
        col = [value] * c + [0.0] * c
        return torch.tensor(col, dtype=torch.float64, device=device).view(1, 2 * c, 1, 1)

    box = all(t == 1.0 for t in taps)
    return _Filter(taps, box, g, planes(2.0 * c1 * g * g), planes(2.0 * c1 + 2.0 * c2 / cov_norm))


class _SsimTail:
    """The SSIM map's per-image sum from filtered ``[s, d, s*s + kappa, d*d]`` planes, with
    every view made once for a tile shape (tiles of one shape then run only the arithmetic).

    In place: the means become ``A = F_s**2 + k1``, ``B = F_d**2``, the squares
    ``C = F_ss - A / g``, ``D = F_dd - B / g``; the SSIM map is
    ``(A - B) (C - D) / ((A + B) (C + D))``: luminance times contrast-structure.
    """

    def __init__(self, filtered: Tensor, spec: _Protocol, filt: _Filter, scratch: _Scratch):
        b, c4, h, w = filtered.shape
        c, n = c4 // 4, c4 // 4 * h * w
        self.b, self.filt, self.clamp_cs = b, filt, spec.clamp_cs
        self.means, self.squares = filtered[:, : 2 * c], filtered[:, 2 * c :]
        quad = filtered.view(b, 2, 2, c, h, w)  # [[A, B], [C, D]]
        self.first, self.second = quad[:, :, 0], quad[:, :, 1]
        # Numerators into the buffer of the unfiltered rows, which the filters are done with.
        self.num = scratch.get_view("rows", b, 2, c, h, w)
        self.lum_num, self.cs_num = self.num[:, 0], self.num[:, 1]
        self.lum_den, self.cs_den = self.first[:, 0], self.first[:, 1]  # after first += second
        self.lum_row = self.lum_num.view(b, 1, n)
        self.cs_col = self.cs_num.view(b, n, 1)

    def __call__(self) -> Tensor:
        torch.addcmul(self.filt.k1, self.means, self.means, out=self.means)
        self.squares.sub_(self.means, alpha=1.0 / self.filt.g)
        torch.sub(self.first, self.second, out=self.num)
        self.first.add_(self.second)
        if self.clamp_cs:
            self.cs_num.clamp_(min=0.0)  # the denominator is positive
        # One division: luminance numerator / (both denominators), then per image its dot
        # product with the contrast-structure numerator (a batched matrix product).
        self.lum_num.div_(self.lum_den.mul_(self.cs_den))
        return torch.bmm(self.lum_row, self.cs_col).view(self.b)


def _ssim_sum(filtered: Tensor, spec: _Protocol, filt: _Filter, scratch: _Scratch) -> Tensor:
    """Per-image sum of the SSIM map (see :class:`_SsimTail`) for a one-off tile shape."""
    return _SsimTail(filtered, spec, filt, scratch)()


def _load_pair(x: Tensor, y: Tensor, pred: Tensor, target: Tensor, clip: tuple[bool, bool]) -> None:
    """Copy both images into float64 planes, clipped where needed."""
    for t, src, needed in ((x, pred, clip[0]), (y, target, clip[1])):
        t.copy_(src)
        if needed:  # the official test code clips both images; a no-op pass is skipped
            t.clamp_(0.0, 1.0)


class _BoxTile:
    """A uniform-window tile: x, y -> s, d, s*s + kappa, d*d -> running sums along rows ->
    k x k sums -> SSIM, with the views of one tile shape (``b`` images of ``c`` channels,
    ``h`` rows, ``own`` of them counted for PSNR) made once and reused."""

    def __init__(
        self,
        shape: tuple[int, int, int, int],
        own: int,
        spec: _Protocol,
        filt: _Filter,
        scratch: _Scratch,
    ) -> None:
        b, c, h, w = shape
        k = len(filt.taps)
        self.kappa = filt.kappa
        # A zero column in front of each row starts the running sums.
        self.buf = scratch.get_view("stats", b, 4 * c, h, w + 1)
        self.pad = self.buf[..., 0]
        stats = self.buf[..., 1:]
        self.x, self.y = stats[:, :c], stats[:, c : 2 * c]
        self.pair, self.products = stats[:, : 2 * c], stats[:, 2 * c :]
        # The running sums' last column holds each row's total: d*d over the owned rows.
        self.row_totals = self.buf[:, 3 * c :, :own, -1]
        # A window's row sum is one difference of running sums, P[j + k] - P[j], whatever k;
        # columns follow by one strided reduction (its inner loop runs along whole rows),
        # cheaper here than running sums down columns.
        self.hi, self.lo = self.buf[..., k:], self.buf[..., :-k]
        self.rows = scratch.get_view("rows", b, 4 * c, h, w + 1 - k)
        self.windows = self.rows.unfold(-2, k, 1)
        # The running sums are spent by then: the window sums go into their buffer.
        self.filtered = scratch.get_view("stats", b, 4 * c, h - k + 1, w + 1 - k)
        self.tail = _SsimTail(self.filtered, spec, filt, scratch)

    def __call__(
        self, pred: Tensor, target: Tensor, clip: tuple[bool, bool]
    ) -> tuple[Tensor, Tensor]:
        self.pad.zero_()
        _load_pair(self.x, self.y, pred, target, clip)
        # d = y - x in place of y (only d's squares and squared means are used, so its sign
        # is free), then s = 2x + d = x + y in place of x, then s*s + kappa and d*d.
        d = self.y.sub_(self.x)
        torch.add(d, self.x, alpha=2.0, out=self.x)
        torch.addcmul(self.kappa, self.pair, self.pair, out=self.products)
        self.buf.cumsum_(dim=-1)
        sse = self.row_totals.sum(dim=(1, 2))
        torch.sub(self.hi, self.lo, out=self.rows)
        torch.sum(self.windows, dim=-1, out=self.filtered)
        return sse, self.tail()


def _to_luma_uint8(x: Tensor) -> Tensor:
    """pyiqa's SSIM input: round(255 * Y of YIQ) for RGB, round(255 * x) otherwise."""
    if x.shape[1] == 3:
        r, g, b = x.unbind(dim=1)
        x = (r * _YIQ_Y[0] + g * _YIQ_Y[1] + b * _YIQ_Y[2]).unsqueeze(1)
    return (x * 255.0).round()


def _tile_metrics(
    pred: Tensor,
    target: Tensor,
    own: int,
    spec: _Protocol,
    filt: _Filter | None,
    clip: tuple[bool, bool],
    scratch: _Scratch,
) -> tuple[Tensor, Tensor | None]:
    """One tile of rows -> per image (sum of squared errors over its first ``own`` rows,
    sum of the SSIM map over its 'valid' region, or None when ``filt`` is None), for PSNR
    alone and windows that are not a plain box (:class:`_BoxTile` does those)."""
    b, c, h, w = pred.shape
    stats = scratch.get_view("stats", b, 4 * c, h, w)
    x, y = stats[:, :c], stats[:, c : 2 * c]
    _load_pair(x, y, pred, target, clip)
    sse = None
    if spec.luma_uint8 or filt is None:
        sse = (x - y)[:, :, :own].square().sum(dim=(1, 2, 3))
        if filt is None:
            return sse, None
        # pyiqa: PSNR on RGB above, SSIM on the rounded luma (one channel for RGB).
        x, y = _to_luma_uint8(x), _to_luma_uint8(y)
        c = x.shape[1]
        stats = stats[:, : 4 * c]
        stats[:, :c].copy_(x)
        stats[:, c : 2 * c].copy_(y)
        x, y = stats[:, :c], stats[:, c : 2 * c]
    # d = y - x in place of y, s = 2x + d = x + y in place of x, then s*s + kappa and d*d.
    d = y.sub_(x)
    torch.add(d, x, alpha=2.0, out=x)
    pair = stats[:, : 2 * c]
    torch.addcmul(filt.kappa, pair, pair, out=stats[:, 2 * c :])
    if sse is None:
        sse = stats[:, 3 * c :, :own].sum(dim=(1, 2, 3))
    return sse, _ssim_sum(_filter_valid(stats, filt.taps, scratch), spec, filt, scratch)
