"""Layers shared by the Restormer family (PromptIR, AdaIR).

Parameter names follow the published implementations so that official checkpoints load strictly:
``norm1.body.weight``, ``attn.qkv``, ``attn.qkv_dwconv``, ``ffn.project_in`` and so on.

Two computation paths give the same function: the default fast path runs each transformer
stack channels-last ((B, H, W, C): fused layer norm without copies, 1x1 convolutions as matrix
products, attention normalised on the small score matrix, GDFN halves computed separately);
``set_reference_mode(model)`` switches to the published op sequence, kept for testing and
benchmarking. They agree to float rounding (tests check 1e-5 in float32, 1e-10 in float64).

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


def _pointwise(conv: nn.Conv2d, y: torch.Tensor, rows: slice | None = None) -> torch.Tensor:
    """A 1x1 convolution applied to a (B, H, W, C) tensor: one matrix product, no im2col.

    ``rows`` picks a slice of the output channels (the two GDFN halves).
    """
    w = conv.weight.flatten(1)
    b = conv.bias
    if rows is not None:
        w = w[rows]
        b = None if b is None else b[rows]
    return F.linear(y, w, b)


def _depthwise(conv: nn.Conv2d, y: torch.Tensor, rows: slice | None = None) -> torch.Tensor:
    """The 3x3 depth-wise ``conv`` (optionally a slice of its channels) on a (B, H, W, C)
    tensor. The permuted view is channels-last memory, which oneDNN handles natively."""
    w, b = conv.weight, conv.bias
    if rows is not None:
        w = w[rows]
        b = None if b is None else b[rows]
    out = F.conv2d(y.permute(0, 3, 1, 2), w, b, 1, 1, 1, w.shape[0])
    return out.permute(0, 2, 3, 1)


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
        self.reference = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.reference:
            return self._reference(x)
        return self.forward_last(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)

    def forward_last(self, y: torch.Tensor) -> torch.Tensor:
        """The same normalisation for a (B, H, W, C) tensor (channels last)."""
        if self.kind == "WithBias":
            return F.layer_norm(y, y.shape[-1:], self.body.weight, self.body.bias, 1e-5)
        var = y.var(-1, keepdim=True, unbiased=False)
        return y * torch.rsqrt(var + 1e-5) * self.body.weight

    def _reference(self, x: torch.Tensor) -> torch.Tensor:
        # The published op sequence: (B, HW, C) copy, mean/var arithmetic, back to 4-D.
        b, c, h, w = x.shape
        y = x.permute(0, 2, 3, 1).reshape(b, h * w, c)
        var = y.var(-1, keepdim=True, unbiased=False)
        if self.kind == "WithBias":
            mu = y.mean(-1, keepdim=True)
            y = (y - mu) / torch.sqrt(var + 1e-5) * self.body.weight + self.body.bias
        else:
            y = y / torch.sqrt(var + 1e-5) * self.body.weight
        return y.reshape(b, h, w, c).permute(0, 3, 1, 2)


class Attention(nn.Module):
    """MDTA: multi-head transposed (channel) attention with a learned per-head temperature.

    Per head, queries and keys are (C/heads, HW) maps L2-normalised along HW; the attention is
    the (C/heads, C/heads) softmax of their products times the temperature.
    """

    def __init__(self, dim: int, num_heads: int, bias: bool = False) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"attention dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.qkv = nn.Conv2d(dim, dim * 3, 1, bias=bias)
        self.qkv_dwconv = nn.Conv2d(dim * 3, dim * 3, 3, padding=1, groups=dim * 3, bias=bias)
        self.project_out = nn.Conv2d(dim, dim, 1, bias=bias)
        self.reference = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.reference:
            return self._reference(x)
        y = x.permute(0, 2, 3, 1).contiguous()
        return self.forward_last(y).permute(0, 3, 1, 2)

    def forward_last(self, y: torch.Tensor) -> torch.Tensor:
        """MDTA on a (B, H, W, C) tensor; returns (B, H, W, C)."""
        b, h, w, c = y.shape
        heads, d = self.num_heads, c // self.num_heads
        # q, k and v each from their slice of the weights: splitting one 3C-channel tensor
        # would cost a stack and a layout copy of its gradient in the backward pass.
        q, k, v = (
            _depthwise(self.qkv_dwconv, _pointwise(self.qkv, y, rows), rows).reshape(b, h * w, c)
            for rows in (slice(0, c), slice(c, 2 * c), slice(2 * c, 3 * c))
        )
        # Normalising the small score matrix equals normalising q and k (as published), but
        # touches (C/heads)^2 numbers instead of two (C/heads, HW) maps, forward and backward.
        # The norms reduce over HW on the (B, HW, C) layout, where the inner loop runs along
        # contiguous channels (the per-head view would stride by C).
        # Squared norms by a dot product (several times faster than vector_norm on this
        # layout); clamping them at 1e-24 is F.normalize's clamp of the norm at 1e-12, and
        # keeps the square root's gradient finite for an all-zero map.
        qn, kn = (
            torch.linalg.vecdot(t, t, dim=1).clamp_min(1e-24).sqrt().reshape(b, heads, d)
            for t in (q, k)
        )
        scale = self.temperature / (qn.unsqueeze(-1) * kn.unsqueeze(-2))
        if heads == 1:
            # q^T k straight from the (B, HW, C) maps: BLAS reads the transposed operand in
            # place, where the per-head layout below costs a copy of q and of k.
            attn = (torch.bmm(q.transpose(1, 2), k) * scale.squeeze(1)).unsqueeze(1)
        else:
            q, k = (t.reshape(b, h * w, heads, d).permute(0, 2, 3, 1) for t in (q, k))
            attn = (q @ k.transpose(-2, -1)) * scale
        attn = attn.softmax(dim=-1)  # (B, heads, d, d)
        # project_out(attn @ v) = (W_o blockdiag(attn)) v: fold the (C, C) output projection
        # into the small attention matrices first, so one (HW, C) x (C, C) product replaces two
        # (attn @ v, then the projection): a third fewer big products forward and backward.
        w_o = self.project_out.weight.reshape(c, heads, d)
        mixed = torch.einsum("ohi,bhij->bohj", w_o, attn).reshape(b, c, c)  # (B, C_out, C_in)
        out = torch.bmm(v, mixed.transpose(1, 2))
        if self.project_out.bias is not None:
            out = out + self.project_out.bias
        return out.reshape(b, h, w, c)

    def _reference(self, x: torch.Tensor) -> torch.Tensor:
        # The published op sequence: chunk, per-tensor head split, attention, merge.
        b, c, h, w = x.shape
        heads = self.num_heads
        q, k, v = self.qkv_dwconv(self.qkv(x)).chunk(3, dim=1)
        q, k, v = (t.reshape(b, heads, c // heads, h * w) for t in (q, k, v))
        q = F.normalize(q, dim=-1)
        k = F.normalize(k, dim=-1)
        attn = ((q @ k.transpose(-2, -1)) * self.temperature).softmax(dim=-1)
        return self.project_out((attn @ v).reshape(b, c, h, w))


class FeedForward(nn.Module):
    """GDFN: gated depth-wise feed-forward; hidden width is ``int(dim * ffn_expansion_factor)``.

    ``project_in`` and ``dwconv`` produce both halves at once in the published code; the fast
    path runs each half with its slice of the weights, so no 2x-hidden tensor is split (and
    re-joined in the backward pass).
    """

    def __init__(self, dim: int, ffn_expansion_factor: float = 2.66, bias: bool = False) -> None:
        super().__init__()
        hidden = int(dim * ffn_expansion_factor)
        self.hidden = hidden
        self.project_in = nn.Conv2d(dim, hidden * 2, 1, bias=bias)
        self.dwconv = nn.Conv2d(hidden * 2, hidden * 2, 3, padding=1, groups=hidden * 2, bias=bias)
        self.project_out = nn.Conv2d(hidden, dim, 1, bias=bias)
        self.reference = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.reference:
            x1, x2 = self.dwconv(self.project_in(x)).chunk(2, dim=1)
            return self.project_out(F.gelu(x1) * x2)
        y = x.permute(0, 2, 3, 1).contiguous()
        return self.forward_last(y).permute(0, 3, 1, 2)

    def forward_last(self, y: torch.Tensor) -> torch.Tensor:
        """GDFN on a (B, H, W, C) tensor; returns (B, H, W, C)."""
        first, second = slice(0, self.hidden), slice(self.hidden, 2 * self.hidden)
        x1 = _depthwise(self.dwconv, _pointwise(self.project_in, y, first), first)
        x2 = _depthwise(self.dwconv, _pointwise(self.project_in, y, second), second)
        return _pointwise(self.project_out, F.gelu(x1) * x2)


class TransformerBlock(nn.Module):
    """Pre-norm Restormer block: ``x + MDTA(LN(x))`` then ``x + GDFN(LN(x))``.

    The fast path (:meth:`forward_last`) works on a (B, H, W, C) tensor: layer norms need no
    copies and 1x1 convolutions become matrix products. :class:`TransformerStack` chains it
    so that consecutive blocks pass data on without changing layout.
    """

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
        self.reference = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.reference:
            x = x + self.attn(self.norm1(x))
            return x + self.ffn(self.norm2(x))
        y = self.forward_last(x.permute(0, 2, 3, 1).contiguous())
        return y.permute(0, 3, 1, 2).contiguous()

    def forward_last(self, y: torch.Tensor) -> torch.Tensor:
        """The block on a contiguous (B, H, W, C) tensor; returns (B, H, W, C)."""
        y = y + self.attn.forward_last(self.norm1.forward_last(y))
        return y + self.ffn.forward_last(self.norm2.forward_last(y))


class TransformerStack(nn.Sequential):
    """TransformerBlocks in sequence (state_dict keys ``<i>.``) that hand channels-last data
    from block to block: one layout change in, one out.

    Input and output are ordinary contiguous (B, C, H, W) tensors, so results do not depend
    on the memory layout of whatever produced the input.
    """

    def __init__(self, *blocks: TransformerBlock) -> None:
        super().__init__(*blocks)
        self.reference = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.reference or len(self) == 0:
            return super().forward(x)
        y = x.permute(0, 2, 3, 1).contiguous()
        for block in self:
            y = block.forward_last(y)
        return y.permute(0, 3, 1, 2).contiguous()


def transformer_stack(
    n: int, dim: int, heads: int, ffn: float, bias: bool, ln: str
) -> TransformerStack:
    """``n`` TransformerBlocks in a :class:`TransformerStack` (keys ``<name>.<i>.``)."""
    return TransformerStack(*[TransformerBlock(dim, heads, ffn, bias, ln) for _ in range(n)])


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


def set_reference_mode(module: nn.Module, enabled: bool = True) -> nn.Module:
    """Switch every layer of ``module`` that has one to its plain reference computation.

    The reference path follows the published implementations op for op (explicit layer-norm
    arithmetic on a (B, HW, C) copy, per-tensor head splits); the default path computes the
    same function faster. Tests compare the two; the benchmark times both.

    >>> block = set_reference_mode(TransformerBlock(dim=16, num_heads=2))
    >>> block.norm1.reference
    True
    """
    for m in module.modules():
        if isinstance(getattr(m, "reference", None), bool):
            m.reference = enabled
    return module
