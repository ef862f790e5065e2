"""MoCE-IR (Zamfir et al., CVPR 2025): a Restormer-style U-net whose decoder blocks carry a
mixture of *complexity experts* chosen per image by a router.

Our own implementation, written from the published architecture (``src/net/moce_ir.py`` of
eduardzamfir/MoCE-IR). At the published settings its ``state_dict`` has exactly the official
names, shapes and order: 1,262 entries, 11,477,752 parameters for MoCE-IR-S (``moceir-s``,
width 32) and 25,353,796 for MoCE-IR (``moceir``, width 48), so the released Lightning ``.ckpt``
files load strictly (``forgetir.load_model(path, arch="moceir")``). It needs neither einops nor
fvcore.

Layout (``C = dim``, four levels):

- encoder ``enc.<i>.0`` (Restormer blocks with biased convolutions) and ``enc.<i>.1``
  (downsample) at widths C, 2C, 4C; ``latent`` at 8C;
- ``freq_embed``: a fixed-initialised Laplacian (trainable, as published), GELU, global mean
  and an MLP turn the latent into the router's frequency embedding;
- decoder ``dec.<i>``: upsample, 1x1 fusion with the skip, then blocks whose attention branch
  is split in a shared MDTA path and an adapter path (the experts, :mod:`.moceir_experts`),
  recombined by cross-attention; ``refinement`` and ``output`` (+ input image) at width C.

Training: each router adds a balance loss; the published recipe adds ``0.01`` times their mean
over decoder blocks to the restoration loss. Here every forward in training mode records that
term and :func:`forgetir.models.base.collect_aux_losses` hands it to the training engine.
The published model draws router noise also at inference (``noisy_eval=True`` by default, as
published); ``moceir-tiny`` turns it off so that its evaluations are deterministic.

Example:
    >>> import torch
    >>> from forgetir.models import create_model
    >>> model = create_model("moceir-tiny").eval()
    >>> model(torch.rand(1, 3, 37, 53)).shape
    torch.Size([1, 3, 37, 53])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from forgetir.models.base import AuxLossMixin, RestorationModel
from forgetir.models.layers import (
    Attention,
    Downsample,
    FeedForward,
    LayerNorm2d,
    OverlapPatchEmbed,
    Upsample,
)
from forgetir.models.moceir_experts import AdapterLayer
from forgetir.models.registry import register_model


class EncoderBlock(nn.Module):
    """Pre-norm Restormer block with MoCE-IR's names (``norms.0/1``, ``mixer``, ``ffn``)."""

    def __init__(self, dim: int, heads: int, ffn: float, bias: bool, ln: str) -> None:
        super().__init__()
        self.norms = nn.ModuleList([LayerNorm2d(dim, ln), LayerNorm2d(dim, ln)])
        self.mixer = Attention(dim, heads, bias)
        self.ffn = FeedForward(dim, ffn, bias)

    def forward_last(self, y: torch.Tensor) -> torch.Tensor:
        """The block on a contiguous (B, H, W, C) tensor (the layers' fast path)."""
        y = y + self.mixer.forward_last(self.norms[0].forward_last(y))
        return y + self.ffn.forward_last(self.norms[1].forward_last(y))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.mixer(self.norms[0](x))
        return x + self.ffn(self.norms[1](x))


class EncoderGroup(nn.Module):
    """``layers.<i>``: encoder blocks in sequence, run channels-last from first to last."""

    def __init__(self, n: int, dim: int, heads: int, ffn: float, ln: str) -> None:
        super().__init__()
        # The published model builds every encoder-side block with biased convolutions.
        self.layers = nn.ModuleList([EncoderBlock(dim, heads, ffn, True, ln) for _ in range(n)])
        self.reference = False  # set_reference_mode: the published op sequence, block by block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.reference:
            for block in self.layers:
                x = block(x)
            return x
        y = x.permute(0, 2, 3, 1).contiguous()
        for block in self.layers:
            y = block.forward_last(y)
        return y.permute(0, 3, 1, 2).contiguous()


class CrossAttention(nn.Module):
    """Transposed (channel) attention with queries from ``x`` and keys/values from ``y``."""

    def __init__(self, dim: int, num_heads: int, bias: bool) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.q = nn.Conv2d(dim, dim, 1, bias=bias)
        self.q_dwconv = nn.Conv2d(dim, dim, 3, padding=1, groups=dim, bias=bias)
        self.kv = nn.Conv2d(dim, dim * 2, 1, bias=bias)
        self.kv_dwconv = nn.Conv2d(dim * 2, dim * 2, 7, padding=3, groups=dim * 2, bias=bias)
        self.project_out = nn.Conv2d(dim, dim, 1, bias=bias)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        heads = self.num_heads
        q = self.q_dwconv(self.q(x)).reshape(b, heads, c // heads, h * w)
        k, v = (
            t.reshape(b, heads, c // heads, h * w) for t in self.kv_dwconv(self.kv(y)).chunk(2, 1)
        )
        attn = (
            F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1)
        ) * self.temperature
        return self.project_out((attn.softmax(dim=-1) @ v).reshape(b, c, h, w))


class DecoderBlock(nn.Module):
    """Shared MDTA branch + expert (adapter) branch, fused by cross-attention, then GDFN."""

    def __init__(
        self, dim: int, heads: int, ffn: float, bias: bool, ln: str, **adapter: object
    ) -> None:
        super().__init__()
        self.norms = nn.ModuleList([LayerNorm2d(dim, ln), LayerNorm2d(dim, ln)])
        self.proj = nn.ModuleList([nn.Conv2d(dim, dim, 1), nn.Conv2d(dim, dim, 1)])
        self.shared = Attention(dim, heads, bias)
        self.mixer = CrossAttention(dim, heads, bias)
        self.ffn = FeedForward(dim, ffn, bias)
        self.adapter = AdapterLayer(dim, **adapter)  # type: ignore[arg-type]

    def forward(self, x: torch.Tensor, freq_emb: torch.Tensor) -> torch.Tensor:
        normed = self.norms[0](x)
        shared = self.shared(self.proj[0](normed))
        routed = self.adapter(self.proj[1](normed), freq_emb, shared)
        x = x + self.mixer(routed, shared)
        return x + self.ffn(self.norms[1](x))


class DecoderGroup(nn.Module):
    """``layers.<i>``: decoder blocks in sequence, each also given the frequency embedding."""

    def __init__(self, n: int, *args: object, **adapter: object) -> None:
        super().__init__()
        self.layers = nn.ModuleList([DecoderBlock(*args, **adapter) for _ in range(n)])  # type: ignore[arg-type]

    def forward(self, x: torch.Tensor, freq_emb: torch.Tensor) -> torch.Tensor:
        for block in self.layers:
            x = block(x, freq_emb)
        return x


class HighPassConv2d(nn.Module):
    """Depth-wise 3x3 convolution initialised to the Laplacian kernel (8 centre, -1 around).

    The published code means to freeze it but does not (it sets an attribute instead of
    calling ``requires_grad_``): the kernel trains, and checkpoints hold the trained value.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False)
        kernel = -torch.ones(3, 3)
        kernel[1, 1] = 8.0
        with torch.no_grad():
            self.conv.weight.copy_(kernel.expand(channels, 1, 3, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class FrequencyEmbedding(nn.Module):
    """High-pass response of the latent, averaged over space, through a 2-layer MLP."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.high_conv = nn.Sequential(HighPassConv2d(dim), nn.GELU())
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.high_conv(x).mean(dim=(-2, -1)))


def _seq(name: str, value: Sequence[int] | int, n: int) -> tuple[int, ...]:
    if isinstance(value, int) or len(value) != n:
        raise ValueError(f"MoCE-IR argument {name!r} needs {n} values, got {value!r}")
    return tuple(int(v) for v in value)


_PUBLISHED = {
    "num_blocks": (4, 6, 6, 8),
    "num_dec_blocks": (2, 4, 4),
    "num_refinement_blocks": 4,
    "heads": (1, 2, 4, 8),
    "stage_depth": (1, 1, 1),
    "rank_type": "spread",
    "depth_type": "constant",
    "topk": 1,
}
_TINY = {
    "dim": 16,
    "num_blocks": (1, 1, 1, 1),
    "num_dec_blocks": (1, 1, 1),
    "num_refinement_blocks": 1,
    "heads": (1, 2, 4, 8),
    "stage_depth": (1, 1, 1),
    "noisy_eval": False,
}


@register_model(
    "moceir",
    defaults={**_PUBLISHED, "dim": 48},
    description="MoCE-IR as published (width 48, 4 complexity experts, top-1); 25.4 M "
    "parameters; loads the official checkpoint strictly.",
)
@register_model(
    "moceir-s",
    defaults={**_PUBLISHED, "dim": 32},
    description="MoCE-IR-S as published (width 32); 11.5 M parameters; loads the official "
    "checkpoint strictly.",
)
@register_model(
    "moceir-tiny",
    defaults=_TINY,
    description="MoCE-IR, width 16, one block per level, deterministic routing at inference",
)
class MoCEIR(AuxLossMixin, RestorationModel):
    """MoCE-IR. Arguments keep the official names (``latent_dim`` is the official option
    name of ``rank``; ``num_exp_blocks`` that of ``num_experts``) plus ``noisy_eval`` (router
    noise at inference, as published) and ``balance_loss_weight`` (the recipe's 0.01)."""

    size_multiple = 8

    def __init__(
        self,
        inp_channels: int = 3,
        out_channels: int = 3,
        dim: int = 32,
        num_blocks: Sequence[int] = (1, 1, 1, 3),
        num_dec_blocks: Sequence[int] = (1, 1, 1),
        heads: Sequence[int] = (1, 1, 1, 1),
        ffn_expansion_factor: float = 2.0,
        num_refinement_blocks: int = 1,
        layer_norm_type: str = "WithBias",
        bias: bool = False,
        rank: int = 2,
        num_experts: int = 4,
        depth_type: str | int = "lin",
        stage_depth: Sequence[int] = (3, 2, 1),
        rank_type: str = "constant",
        topk: int = 1,
        with_complexity: bool = False,
        complexity_scale: str = "max",
        noisy_eval: bool = True,
        balance_loss_weight: float = 0.01,
    ) -> None:
        super().__init__()
        nb, hd = _seq("num_blocks", num_blocks, 4), _seq("heads", heads, 4)
        nd, sd = _seq("num_dec_blocks", num_dec_blocks, 3), _seq("stage_depth", stage_depth, 3)
        if dim < 8 or dim % 8:
            raise ValueError(f"MoCE-IR argument 'dim' must be a positive multiple of 8, got {dim}")
        if inp_channels != out_channels:
            raise ValueError(
                f"MoCE-IR adds the input image to the output: inp_channels ({inp_channels}) "
                f"must equal out_channels ({out_channels})"
            )
        self.balance_loss_weight = balance_loss_weight
        ffn, ln = ffn_expansion_factor, layer_norm_type
        dims = [dim * 2**i for i in range(4)]
        # Registration order below is the official state_dict order: keep it.
        self.patch_embed = OverlapPatchEmbed(inp_channels, dim, bias=False)
        self.freq_embed = FrequencyEmbedding(dims[3])
        self.enc = nn.ModuleList(
            [
                nn.ModuleList([EncoderGroup(nb[i], dims[i], hd[i], ffn, ln), Downsample(dims[i])])
                for i in range(3)
            ]
        )
        self.latent = EncoderGroup(nb[3], dims[3], hd[3], ffn, ln)
        adapter = {
            "freq_dim": dims[3],
            "rank": rank,
            "num_experts": num_experts,
            "top_k": topk,
            "depth_type": depth_type,
            "rank_type": rank_type,
            "with_complexity": with_complexity,
            "complexity_scale": complexity_scale,
            "noisy_eval": noisy_eval,
        }
        self.dec = nn.ModuleList()
        for i in range(3):  # from the bottleneck up: widths 8C -> 4C -> 2C -> C
            wide, narrow = dims[3 - i], dims[2 - i]
            group = DecoderGroup(
                nd[2 - i], narrow, hd[2 - i], ffn, bias, ln, stage_depth=sd[i], **adapter
            )
            self.dec.append(
                nn.ModuleList([Upsample(wide), nn.Conv2d(wide, narrow, 1, bias=bias), group])
            )
        self.refinement = EncoderGroup(num_refinement_blocks, dim, hd[0], ffn, ln)
        self.output = nn.Conv2d(dim, out_channels, 3, padding=1, bias=bias)

    def _encoder(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        feats, skips = self.patch_embed(x), []
        for group, down in self.enc:  # type: ignore[misc]
            feats = group(feats)
            skips.append(feats)
            feats = down(feats)
        return skips, self.latent(feats)

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        return self._encoder(x)[1]

    def encoder_parameters(self) -> list[nn.Parameter]:
        modules = (self.patch_embed, self.enc, self.latent)
        return [p for m in modules for p in m.parameters()]

    def adapters(self) -> list[AdapterLayer]:
        """Every expert layer, from the bottleneck up (decoder level, then block)."""
        return [m for m in self.dec.modules() if isinstance(m, AdapterLayer)]

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        skips, feats = self._encoder(x)
        freq_emb = self.freq_embed(feats)
        for up, fuse, group in self.dec:  # type: ignore[misc]
            feats = group(fuse(torch.cat([up(feats), skips.pop()], 1)), freq_emb)
        out = self.output(self.refinement(feats)) + x
        if self.training:
            losses = [a.loss for a in self.adapters() if a.loss is not None]
            if losses:
                # The published total: the routers' mean balance loss, times the recipe weight.
                self.record_aux_loss(self.balance_loss_weight * torch.stack(losses).mean())
        return out


def expert_usage(
    model: nn.Module, test_sets: dict[str, Any]
) -> dict[str, list[list[float]]] | None:
    """Share of images routed to each expert, per test set and decoder level.

    For every set of ``test_sets`` (``{name: TestSet}``): one list per decoder level (from the
    bottleneck up), each the fraction of (image, block, top-k slot) choices that went to each
    expert. None if ``model`` has no experts. Run in eval mode, one image at a time; with
    ``noisy_eval`` (the published setting) the shares include the router noise.

    Example:
        >>> from forgetir.data.testsets import TestSet
        >>> m = MoCEIR(**{**_TINY, "dim": 8})
        >>> x = torch.rand(1, 3, 16, 16)
        >>> s = TestSet("dehaze", "x", ["a"], [x], [x])
        >>> [round(sum(level), 6) for level in expert_usage(m, {"dehaze": s})["dehaze"]]
        [1.0, 1.0, 1.0]
    """
    if not isinstance(model, MoCEIR):
        return None
    was_training = model.training
    model.eval()
    levels = [
        [m for m in group.modules() if isinstance(m, AdapterLayer)] for *_, group in model.dec
    ]
    usage: dict[str, list[list[float]]] = {}
    device = next(model.parameters()).device
    with torch.no_grad():
        for name, test_set in test_sets.items():
            counts = [torch.zeros(len(level[0].experts)) for level in levels]
            for x in test_set.degraded:
                model(x.to(device))
                for c, level in zip(counts, levels, strict=True):
                    for adapter in level:
                        c += torch.bincount(adapter.last_experts.flatten().cpu(), minlength=len(c))
            usage[name] = [(c / c.sum().clamp_min(1)).tolist() for c in counts]
    model.train(was_training)
    return usage
