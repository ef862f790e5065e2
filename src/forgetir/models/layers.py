"""Layers shared by the Restormer family (PromptIR, AdaIR).

Parameter names follow the published implementations so that official checkpoints load strictly:
``norm1.body.weight``, ``attn.qkv``, ``attn.qkv_dwconv``, ``ffn.project_in`` and so on.

Example:
    >>> import torch
    >>> block = TransformerBlock(dim=16, num_heads=2)
    >>> block(torch.rand(1, 16, 8, 8)).shape
    torch.Size([1, 16, 8, 8])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class _BiasFreeBody(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))


class _WithBiasBody(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))


class LayerNorm2d(nn.Module):
    """Layer norm over the channel dimension of a (B, C, H, W) tensor.

    ``"WithBias"`` is the published default (eps 1e-5, biased variance): exactly
    ``F.layer_norm`` over channels, which we run on a channels-last view so that PyTorch's fused
    kernel does the work instead of the reference's mean/var/sub/div chain and two rearranges.
    ``"BiasFree"`` is Restormer's variant that divides by the standard deviation without
    centring.
    """

    def __init__(self, dim: int, kind: str = "WithBias") -> None:
        super().__init__()
        if kind not in ("WithBias", "BiasFree"):
            raise ValueError(f"LayerNorm kind {kind!r} unknown; valid: 'WithBias', 'BiasFree'")
        self.kind = kind
        self.body = _WithBiasBody(dim) if kind == "WithBias" else _BiasFreeBody(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.permute(0, 2, 3, 1)
        if self.kind == "WithBias":
            y = F.layer_norm(y, y.shape[-1:], self.body.weight, self.body.bias, 1e-5)
        else:
            var = y.var(-1, keepdim=True, unbiased=False)
            y = y * torch.rsqrt(var + 1e-5) * self.body.weight
        return y.permute(0, 3, 1, 2)


class Attention(nn.Module):
    """MDTA: multi-head transposed (channel) attention with a learned per-head temperature."""

    def __init__(self, dim: int, num_heads: int, bias: bool = False) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"attention dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.qkv = nn.Conv2d(dim, dim * 3, 1, bias=bias)
        self.qkv_dwconv = nn.Conv2d(dim * 3, dim * 3, 3, padding=1, groups=dim * 3, bias=bias)
        self.project_out = nn.Conv2d(dim, dim, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv_dwconv(self.qkv(x)).reshape(b, 3, self.num_heads, c // self.num_heads, h * w)
        q, k, v = qkv.unbind(1)
        q = F.normalize(q, dim=-1)
        k = F.normalize(k, dim=-1)
        attn = (q @ k.transpose(-2, -1)) * self.temperature
        out = attn.softmax(dim=-1) @ v
        return self.project_out(out.reshape(b, c, h, w))


class FeedForward(nn.Module):
    """GDFN: gated depth-wise feed-forward; hidden width is ``int(dim * ffn_expansion_factor)``."""

    def __init__(self, dim: int, ffn_expansion_factor: float = 2.66, bias: bool = False) -> None:
        super().__init__()
        hidden = int(dim * ffn_expansion_factor)
        self.project_in = nn.Conv2d(dim, hidden * 2, 1, bias=bias)
        self.dwconv = nn.Conv2d(hidden * 2, hidden * 2, 3, padding=1, groups=hidden * 2, bias=bias)
        self.project_out = nn.Conv2d(hidden, dim, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = self.dwconv(self.project_in(x)).chunk(2, dim=1)
        return self.project_out(F.gelu(x1) * x2)


class TransformerBlock(nn.Module):
    """Pre-norm Restormer block: ``x + MDTA(LN(x))`` then ``x + GDFN(LN(x))``."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        ffn_expansion_factor: float = 2.66,
        bias: bool = False,
        layer_norm_type: str = "WithBias",
    ) -> None:
        super().__init__()
        self.norm1 = LayerNorm2d(dim, layer_norm_type)
        self.attn = Attention(dim, num_heads, bias)
        self.norm2 = LayerNorm2d(dim, layer_norm_type)
        self.ffn = FeedForward(dim, ffn_expansion_factor, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


def transformer_stack(n: int, dim: int, heads: int, ffn: float, bias: bool, ln: str) -> nn.Sequential:
    """``n`` TransformerBlocks in a Sequential (keys ``<name>.<i>.``)."""
    return nn.Sequential(*[TransformerBlock(dim, heads, ffn, bias, ln) for _ in range(n)])


class OverlapPatchEmbed(nn.Module):
    """3x3 convolution from image channels to the embedding width."""

    def __init__(self, in_c: int = 3, embed_dim: int = 48, bias: bool = False) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_c, embed_dim, 3, padding=1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class Downsample(nn.Module):
    """Halve the resolution, double the channels: conv to C/2 then pixel-unshuffle by 2."""

    def __init__(self, n_feat: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(n_feat, n_feat // 2, 3, padding=1, bias=False), nn.PixelUnshuffle(2)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class Upsample(nn.Module):
    """Double the resolution, halve the channels: conv to 2C then pixel-shuffle by 2."""

    def __init__(self, n_feat: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(n_feat, n_feat * 2, 3, padding=1, bias=False), nn.PixelShuffle(2)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)
