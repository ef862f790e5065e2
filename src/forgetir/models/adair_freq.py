"""AdaIR's frequency modules: FFT low/high split, cross-attention and the gated residual.

Names follow the published code (Cui et al. 2024, ``net/model.py`` of c-yn/AdaIR) so that its
checkpoints load strictly: ``para1``, ``para2``, ``conv``, ``conv1``, ``score_gen``,
``channel_cross_l/h/agg``, ``frequency_refine.SpatialGate/ChannelGate/proj``, ``rate_conv``.

Example:
    >>> import torch
    >>> fre = FrequencyModule(dim=32, num_heads=4)
    >>> y = torch.rand(1, 32, 16, 16)
    >>> torch.equal(fre(torch.rand(1, 3, 128, 128), y), y)  # para1 = 0: identity at init
    True
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ChannelCrossAttention(nn.Module):
    """Transposed (channel) attention with queries from ``x`` and keys/values from ``y``."""

    def __init__(self, dim: int, num_heads: int, bias: bool = False) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"cross-attention dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.q = nn.Conv2d(dim, dim, 1, bias=bias)
        self.q_dwconv = nn.Conv2d(dim, dim, 3, padding=1, groups=dim, bias=bias)
        self.kv = nn.Conv2d(dim, dim * 2, 1, bias=bias)
        self.kv_dwconv = nn.Conv2d(dim * 2, dim * 2, 3, padding=1, groups=dim * 2, bias=bias)
        self.project_out = nn.Conv2d(dim, dim, 1, bias=bias)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if x.shape != y.shape:
            raise ValueError(f"cross-attention inputs differ in shape: {x.shape} vs {y.shape}")
        b, c, h, w = x.shape
        heads = self.num_heads
        q = self.q_dwconv(self.q(x)).reshape(b, heads, c // heads, h * w)
        k, v = self.kv_dwconv(self.kv(y)).reshape(b, 2, heads, c // heads, h * w).unbind(1)
        q = F.normalize(q, dim=-1)
        k = F.normalize(k, dim=-1)
        attn = (q @ k.transpose(-2, -1)) * self.temperature
        out = attn.softmax(dim=-1) @ v
        return self.project_out(out.reshape(b, c, h, w))


class SpatialGate(nn.Module):
    """Sigmoid map from the channel-wise max and mean through a 7x7 conv: (B, 1, H, W)."""

    def __init__(self) -> None:
        super().__init__()
        self.spatial = nn.Conv2d(2, 1, 7, padding=3, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # max (not amax): on ties its gradient goes to one element, as in the published model.
        pooled = torch.cat((x.max(1, keepdim=True).values, x.mean(1, keepdim=True)), dim=1)
        return torch.sigmoid(self.spatial(pooled))


class ChannelGate(nn.Module):
    """Sigmoid of a shared MLP applied to global average and max pooling: (B, C, 1, 1)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        # dim // 16 at the published widths; at least one channel so any width builds.
        hidden = max(1, dim // 16)
        self.mlp = nn.Sequential(
            nn.Conv2d(dim, hidden, 1, bias=False), nn.ReLU(), nn.Conv2d(hidden, dim, 1, bias=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        avg = self.mlp(x.mean((2, 3), keepdim=True))
        mx = self.mlp(F.adaptive_max_pool2d(x, 1))  # tie gradients as published, unlike amax
        return torch.sigmoid(avg + mx)


class FrequencyRefine(nn.Module):
    """Modulate each band by a gate computed from the other, add, and project (FMoM)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.SpatialGate = SpatialGate()
        self.ChannelGate = ChannelGate(dim)
        self.proj = nn.Conv2d(dim, dim, 1)

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        return self.proj(low * self.SpatialGate(high) + high * self.ChannelGate(low))


def band_half_sizes(size: tuple[int, int], rate: torch.Tensor, n: int = 128) -> torch.Tensor:
    """Half-sizes of the low-frequency box per image: ``int((side // n) * rate)``.

    ``rate`` is the (B, 2, 1, 1) sigmoid output of ``rate_conv``. Because ``side // n`` is an
    integer and ``rate < 1`` (almost always), the box is empty unless a side is >= ``2 * n``:
    for 128x128 training patches every image goes to the "high" band. Returns int (B, 2).
    """
    h, w = size
    return torch.stack(((h // n) * rate[:, 0, 0, 0], (w // n) * rate[:, 1, 0, 0]), 1).int()


def frequency_split_literal(
    x: torch.Tensor, rate: torch.Tensor, n: int = 128
) -> tuple[torch.Tensor, torch.Tensor]:
    """The published op sequence, step by step: (high, low) magnitudes of ``x``.

    A (B, C, H, W) mask is 1 on ``[h//2 - hh, h//2 + hh) x [w//2 - hw, w//2 + hw)`` of the
    roll-shifted ``fft2(x, norm='forward')``; each band is unshifted, inverse-transformed and
    replaced by its magnitude. Kept as the reference for :func:`frequency_split`.
    """
    h, w = x.shape[-2:]
    half = band_half_sizes((h, w), rate, n)
    mask = torch.zeros(x.shape, device=x.device)
    for i in range(x.shape[0]):
        hh, hw = int(half[i, 0]), int(half[i, 1])
        mask[i, :, h // 2 - hh : h // 2 + hh, w // 2 - hw : w // 2 + hw] = 1
    spec = torch.fft.fft2(x.float(), norm="forward", dim=(-2, -1))
    spec = torch.roll(spec, shifts=(h // 2, w // 2), dims=(2, 3))
    high = torch.roll(spec * (1 - mask), shifts=(-(h // 2), -(w // 2)), dims=(2, 3))
    low = torch.roll(spec * mask, shifts=(-(h // 2), -(w // 2)), dims=(2, 3))
    high = torch.fft.ifft2(high, norm="forward", dim=(-2, -1)).abs()
    low = torch.fft.ifft2(low, norm="forward", dim=(-2, -1)).abs()
    return high.to(x.dtype), low.to(x.dtype)


def frequency_split(
    x: torch.Tensor, rate: torch.Tensor, n: int = 128
) -> tuple[torch.Tensor, torch.Tensor]:
    """Same result as :func:`frequency_split_literal` (to float rounding), with less work.

    ``unshift(shift(X) * M) == X * unshift(M)``, so the mask is rolled instead of the spectrum;
    the high band is ``|x - ifft(X * M)|`` by linearity, saving one inverse FFT; and when a
    side is below ``n`` the box is empty for every image, so the split is ``(|x|, 0)`` with no
    FFT at all (the common case: all features of a 128x128 patch). The mask is built with
    tensor ops only, so no device sync is needed.
    """
    h, w = x.shape[-2:]
    if h // n == 0 or w // n == 0:
        return x.abs(), torch.zeros_like(x)
    half = band_half_sizes((h, w), rate, n)
    rows = torch.arange(h, device=x.device) - h // 2
    cols = torch.arange(w, device=x.device) - w // 2
    row_in = (rows >= -half[:, :1]) & (rows < half[:, :1])  # (B, H), shifted coordinates
    col_in = (cols >= -half[:, 1:]) & (cols < half[:, 1:])
    row_in = torch.roll(row_in, shifts=-(h // 2), dims=1)
    col_in = torch.roll(col_in, shifts=-(w // 2), dims=1)
    mask = (row_in[:, None, :, None] & col_in[:, None, None, :]).to(torch.float32)
    xf = x.float()
    spec = torch.fft.fft2(xf, norm="forward", dim=(-2, -1))
    low = torch.fft.ifft2(spec * mask, norm="forward", dim=(-2, -1))
    high = (xf - low).abs()
    return high.to(x.dtype), low.abs().to(x.dtype)


class FrequencyModule(nn.Module):
    """AdaIR's adaptive frequency learning block (AFLB), applied to a decoder feature ``y``.

    The input image is bilinearly resized to ``y``'s size, lifted by ``conv1`` and split into
    high/low frequency magnitudes; each band cross-attends to ``y``, the bands modulate each
    other (:class:`FrequencyRefine`), ``y`` cross-attends to the result, and the output is
    ``out * para1 + y * para2``. ``para1`` starts at 0, so the block starts as the identity.
    ``conv`` and ``score_gen`` are registered but unused, as in the published model.

    Set ``literal = True`` to run the published FFT op sequence instead of the fast one.
    """

    def __init__(
        self, dim: int, num_heads: int, bias: bool = False, in_dim: int = 3, n: int = 128
    ) -> None:
        super().__init__()
        self.n = n
        self.literal = False
        self.para1 = nn.Parameter(torch.zeros(dim, 1, 1))
        self.para2 = nn.Parameter(torch.ones(dim, 1, 1))
        self.conv = nn.Conv2d(in_dim, dim, 3, padding=1, bias=False)
        self.conv1 = nn.Conv2d(in_dim, dim, 3, padding=1, bias=False)
        self.score_gen = nn.Conv2d(2, 2, 7, padding=3)
        self.channel_cross_l = ChannelCrossAttention(dim, num_heads, bias)
        self.channel_cross_h = ChannelCrossAttention(dim, num_heads, bias)
        self.channel_cross_agg = ChannelCrossAttention(dim, num_heads, bias)
        self.frequency_refine = FrequencyRefine(dim)
        # dim // 8 at the published widths; at least one channel so any width builds.
        self.rate_conv = nn.Sequential(
            nn.Conv2d(dim, max(1, dim // 8), 1, bias=False),
            nn.GELU(),
            nn.Conv2d(max(1, dim // 8), 2, 1, bias=False),
        )

    @property
    def reference(self) -> bool:
        """:func:`~forgetir.models.layers.set_reference_mode` switches this module to the
        published FFT op sequence (``literal``) along with every other layer."""
        return self.literal

    @reference.setter
    def reference(self, enabled: bool) -> None:
        self.literal = enabled

    def split(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(high, low) frequency features of an image already resized to the feature size."""
        x = self.conv1(image)
        # rate_conv only sets integer box sizes, so it never receives a gradient (as published).
        rate = torch.sigmoid(self.rate_conv(x.mean((2, 3), keepdim=True)))
        if self.literal:
            return frequency_split_literal(x, rate, self.n)
        return frequency_split(x, rate, self.n)

    def forward(self, image: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        image = F.interpolate(image, size=y.shape[-2:], mode="bilinear", align_corners=False)
        high, low = self.split(image)
        # Published naming: the "_l" attention takes the high band and "_h" the low one.
        high = self.channel_cross_l(high, y)
        low = self.channel_cross_h(low, y)
        out = self.channel_cross_agg(y, self.frequency_refine(low, high))
        return out * self.para1 + y * self.para2
