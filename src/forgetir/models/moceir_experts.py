"""MoCE-IR's mixture of complexity experts: the Fourier-attention expert, the router and the
adapter layer that dispatches each image to its top-k experts.

Written from the published architecture (Zamfir et al., CVPR 2025, ``src/net/moce_ir.py`` of
eduardzamfir/MoCE-IR); parameter names and registration order are the official ones so that
the published checkpoints load strictly.

Facts of the published code we reproduce because they change outputs or the state dict:

- expert ``i`` (of ``E``) works on image patches of side ``2**(i+2)`` (4, 8, 16, 32) and, with
  ``rank_type="spread"`` (the published setting), a rank of ``dim // 2**(E-1-i)`` channels: the
  cheapest expert sees the smallest patches with the fewest channels;
- the router's logits are a linear map of the globally pooled feature plus a linear map of a
  frequency embedding of the bottleneck; Gaussian noise of std ``1/E`` is added to them
  **also at inference** (``noisy_eval``), so the published model is stochastic at test time;
- the router buffer ``complexity`` holds each expert's parameter count divided by the largest;
  it scales the importance (balance) loss only when ``with_complexity`` is set;
- an expert's ``depth`` repeats a computation whose result does not change (the published loop
  re-applies the block to its unchanged input): one application gives the same output.

Example:
    >>> import torch
    >>> layer = AdapterLayer(dim=16, freq_dim=32, num_experts=4, top_k=1)
    >>> out = layer(torch.rand(2, 16, 8, 8), torch.rand(2, 32), torch.rand(2, 16, 8, 8))
    >>> out.shape, layer.last_experts.shape
    (torch.Size([2, 16, 8, 8]), torch.Size([2, 1]))
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from forgetir.models.layers import LayerNorm2d

RANK_TYPES = ("constant", "lin", "double", "exp", "fact", "spread")
DEPTH_TYPES = ("lin", "double", "exp", "fact", "constant")


def _patches(x: torch.Tensor, p: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, H/p, W/p, p, p) after zero-padding H and W up to multiples of p."""
    b, c, h, w = x.shape
    x = F.pad(x, (0, (-w) % p, 0, (-h) % p))
    hp, wp = x.shape[-2] // p, x.shape[-1] // p
    return x.reshape(b, c, hp, p, wp, p).permute(0, 1, 2, 4, 3, 5)


def _unpatch(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    b, c, hp, wp, p, _ = x.shape
    return x.permute(0, 1, 2, 4, 3, 5).reshape(b, c, hp * p, wp * p)[..., :h, :w]


class _ExpertNorm(LayerNorm2d):
    """The expert's channel layer norm, always computed as published (mean/var arithmetic).

    It normalises over the expert's rank, as few as 1-2 channels at the top decoder level,
    where the variance is tiny and its gradient ill-conditioned: PyTorch's fused kernel gives
    gradients 1-2 % away from float64 there, the published arithmetic 0.1-0.3 %.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._reference(x)


class FFTAttention(nn.Module):
    """Self-attention in the Fourier domain over non-overlapping ``patch_size`` patches.

    Per patch, queries and keys are multiplied in the frequency domain (a circular
    correlation), brought back, layer-normalised over channels, then gate the values.
    """

    def __init__(self, dim: int, patch_size: int) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.q = nn.Conv2d(dim, dim, 1, bias=False)
        self.q_dwconv = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.kv = nn.Conv2d(dim, dim * 2, 1, bias=False)
        self.kv_dwconv = nn.Conv2d(dim * 2, dim * 2, 7, padding=3, groups=dim * 2)
        self.norm = _ExpertNorm(dim, "WithBias")
        self.proj_out = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        p = self.patch_size
        q = self.q_dwconv(self.q(x))
        k, v = self.kv_dwconv(self.kv(x)).chunk(2, dim=1)
        # The FFT runs in at least float32 (half-precision FFTs lose too much), as published.
        dtype = torch.promote_types(q.dtype, torch.float32)
        spectrum = torch.fft.rfft2(_patches(q.to(dtype), p)) * torch.fft.rfft2(
            _patches(k.to(dtype), p)
        )
        out = _unpatch(torch.fft.irfft2(spectrum, s=(p, p)), h, w)
        return self.proj_out(self.norm(out) * v)


class ModExpert(nn.Module):
    """One complexity expert: project to ``rank`` channels, Fourier attention gated by the
    shared branch (SiLU), project back, add the input."""

    def __init__(self, dim: int, rank: int, patch_size: int, depth: int = 1) -> None:
        super().__init__()
        self.depth = depth  # recorded for completeness; see the module docstring
        self.proj = nn.ModuleList(
            [
                nn.Conv2d(dim, rank, 1, bias=False),
                nn.Conv2d(dim, rank, 1, bias=False),
                nn.Conv2d(rank, dim, 1, bias=False),
            ]
        )
        self.body = FFTAttention(rank, patch_size)

    def forward(self, x: torch.Tensor, shared: torch.Tensor) -> torch.Tensor:
        if x.shape[0] == 0:
            return x
        y = self.body(self.proj[0](x)) * F.silu(self.proj[1](shared))
        return self.proj[2](y) + x


class ExpertSlot(nn.ModuleList):
    """Holds one :class:`ModExpert` at index 0: the published model wraps each expert in a
    two-input sequential container, which puts ``.0.`` in every expert parameter name."""

    def forward(self, x: torch.Tensor, shared: torch.Tensor) -> torch.Tensor:
        return self[0](x, shared)


def _cv_squared(values: torch.Tensor) -> torch.Tensor:
    """Squared coefficient of variation (unbiased std / mean) of a 1-D tensor."""
    return (values.std() / (values.mean() + 1e-8)) ** 2


class GlobalLinear(nn.Sequential):
    """Global average pool then a bias-free linear map: ``gate.2.weight`` as published (index
    1 is the published reshape, which has no parameters)."""

    def __init__(self, dim: int, out: int) -> None:
        super().__init__(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(dim, out, bias=False))


class RoutingFunction(nn.Module):
    """Noisy top-k router with the importance + load balance loss of sparse mixtures."""

    def __init__(
        self,
        dim: int,
        freq_dim: int,
        num_experts: int,
        k: int,
        complexity: torch.Tensor,
        use_complexity_bias: bool = False,
        complexity_scale: str = "max",
        noisy_eval: bool = True,
    ) -> None:
        super().__init__()
        if complexity_scale not in ("max", "min"):
            raise ValueError(f"complexity_scale {complexity_scale!r} unknown; valid: 'max', 'min'")
        self.gate = GlobalLinear(dim, num_experts)
        self.freq_gate = nn.Linear(freq_dim, num_experts, bias=False)
        scale = complexity.max() if complexity_scale == "max" else complexity.min()
        self.register_buffer("complexity", complexity / scale)
        self.k = k
        self.num_experts = num_experts
        self.noise_std = 1.0 / num_experts
        self.use_complexity_bias = use_complexity_bias
        self.noisy_eval = noisy_eval

    def forward(
        self, x: torch.Tensor, freq_emb: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(top-k gate values (B, k), top-k expert indices (B, k), balance loss or None)."""
        logits = self.gate(x) + self.freq_gate(freq_emb)
        noisy = logits
        if self.training or self.noisy_eval:
            noisy = logits + torch.randn_like(logits) * self.noise_std
        values, indices = noisy.softmax(dim=-1).topk(self.k, dim=-1)
        aux = None
        if self.training:
            aux = 0.5 * self.importance_loss(logits) + 0.5 * self.load_loss(logits, noisy)
        return values, indices, aux

    def importance_loss(self, logits: torch.Tensor) -> torch.Tensor:
        """CV^2 of the summed routing probabilities per expert (complexity-weighted if set)."""
        importance = logits.softmax(dim=-1).sum(dim=0)
        if self.use_complexity_bias:
            importance = importance * self.complexity
        return _cv_squared(importance)

    def load_loss(self, logits: torch.Tensor, noisy: torch.Tensor) -> torch.Tensor:
        """CV^2 of each expert's mean probability of being picked under fresh router noise.

        The threshold is the noisy logit of each image's k-th choice; an expert is picked when
        its clean logit plus noise exceeds it: probability ``1 - Phi((threshold - logit) / std)``.
        """
        kth = noisy.topk(self.k, dim=-1).indices[:, -1:]
        threshold = noisy.gather(1, kth)
        z = (threshold - logits) / self.noise_std
        prob = 0.5 * torch.erfc(z / math.sqrt(2.0))  # = 1 - Phi(z)
        return _cv_squared(prob.mean(dim=0))


def _expert_ranks(dim: int, rank: int, rank_type: str, n: int) -> list[int]:
    table = {
        "constant": [rank] * n,
        "lin": [rank + i for i in range(n)],
        "double": [rank + 2 * i for i in range(n)],
        "exp": [rank ** (i + 1) for i in range(n)],
        "fact": [math.factorial(rank + i) for i in range(n)],
        "spread": [dim // 2**i for i in range(n)][::-1],
    }
    if rank_type not in table:
        raise ValueError(f"MoCE-IR rank_type {rank_type!r} unknown; valid: {', '.join(table)}")
    return table[rank_type]


def _expert_depths(stage_depth: int, depth_type: str | int, n: int) -> list[int]:
    if isinstance(depth_type, int):
        return [depth_type] * n
    table = {
        "lin": [stage_depth + i for i in range(n)],
        "double": [stage_depth + 2 * i for i in range(n)],
        "exp": [2**i for i in range(n)],
        "fact": [math.factorial(i + 1) for i in range(n)],
        "constant": [stage_depth] * n,
    }
    if depth_type not in table:
        raise ValueError(
            f"MoCE-IR depth_type {depth_type!r} unknown; valid: an integer or {', '.join(table)}"
        )
    return table[depth_type]


class AdapterLayer(nn.Module):
    """The mixture: route each image to its top-k experts, sum their gated outputs, 1x1 conv.

    After each forward, ``last_experts`` holds the (B, k) chosen expert indices (for expert
    usage statistics) and ``loss`` the router's balance loss (None outside training).
    """

    def __init__(
        self,
        dim: int,
        freq_dim: int,
        rank: int = 2,
        num_experts: int = 4,
        top_k: int = 1,
        stage_depth: int = 1,
        depth_type: str | int = "constant",
        rank_type: str = "spread",
        with_complexity: bool = False,
        complexity_scale: str = "max",
        noisy_eval: bool = True,
    ) -> None:
        super().__init__()
        if not 1 <= top_k <= num_experts:
            raise ValueError(
                f"MoCE-IR topk={top_k} must be between 1 and num_experts={num_experts}"
            )
        ranks = _expert_ranks(dim, rank, rank_type, num_experts)
        depths = _expert_depths(stage_depth, depth_type, num_experts)
        if min(ranks) < 1:
            raise ValueError(
                f"MoCE-IR expert ranks {ranks} at width {dim}: every rank must be >= 1"
            )
        self.experts = nn.ModuleList(
            [
                ExpertSlot([ModExpert(dim, r, 2 ** (i + 2), d)])
                for i, (r, d) in enumerate(zip(ranks, depths, strict=True))
            ]
        )
        self.proj_out = nn.Conv2d(dim, dim, 1, bias=False)
        complexity = torch.tensor([sum(p.numel() for p in e.parameters()) for e in self.experts])
        self.routing = RoutingFunction(
            dim,
            freq_dim,
            num_experts,
            top_k,
            complexity,
            with_complexity,
            complexity_scale,
            noisy_eval,
        )
        self.loss: torch.Tensor | None = None
        self.last_experts: torch.Tensor | None = None

    def forward(
        self, x: torch.Tensor, freq_emb: torch.Tensor, shared: torch.Tensor
    ) -> torch.Tensor:
        gates, experts, self.loss = self.routing(x, freq_emb)
        self.last_experts = experts.detach()
        out = torch.zeros_like(x)
        # Each image goes only to its own experts (the published inference path mixes images
        # of a batch; its training path, which we follow, does not; both agree for one image).
        for e, expert in enumerate(self.experts):
            rows, slot = (experts == e).nonzero(as_tuple=True)
            if rows.numel() == 0:
                continue
            y = expert(x[rows], shared[rows]) * gates[rows, slot].to(x.dtype)[:, None, None, None]
            out = out.index_add(0, rows, y)
        return self.proj_out(out)
