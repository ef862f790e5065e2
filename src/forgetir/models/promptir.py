"""PromptIR (Potlapalli et al., NeurIPS 2023): a Restormer U-net whose decoder is steered by
learned prompts.

Our own implementation, written from the published architecture. At the default arguments its
``state_dict`` has exactly the official names, shapes and order (so the released checkpoint loads
strictly); unlike the official code every channel count is derived from the arguments, so any
width, head layout or depth builds.

Channel plan with ``C = dim`` and prompt dims ``(p1, p2, p3)`` (official: C=48, p=(64, 128, 320)):

==================  =======================  =====================================
module              channels                 role
==================  =======================  =====================================
latent              8C                       bottleneck (what ``encode`` returns)
prompt3             8C -> p3                 prompt from the latent
noise_level3        8C + p3 (noise heads)    mixes latent and prompt
reduce_noise_level3 8C + p3 -> 4C            1x1
up4_3               4C -> 2C                 conv + pixel-shuffle
reduce_chan_level3  2C + 4C -> 4C            after the skip from encoder level 3
prompt2 / noise2    4C -> p2, 4C + p2 -> 4C
up3_2               4C -> 2C
reduce_chan_level2  2C + 2C -> 2C
prompt1 / noise1    2C -> p1, 2C + p1 -> 2C
up2_1               2C -> C, concatenated with encoder level 1: 2C
decoder_level1 ...  2C                       decoder level 1, refinement, output conv
==================  =======================  =====================================

The official model also registers modules it never calls (``chnl_reduce1/2/3``,
``reduce_noise_channel_1/2/3``); they are kept, with derived shapes, so strict loading works.

Example:
    >>> import torch
    >>> from forgetir.models import create_model
    >>> model = create_model("promptir-tiny")
    >>> model(torch.rand(1, 3, 37, 53)).shape
    torch.Size([1, 3, 37, 53])
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from forgetir.models.base import RestormerModel
from forgetir.models.layers import (
    Downsample,
    OverlapPatchEmbed,
    TransformerBlock,
    TransformerStack,
    Upsample,
    transformer_stack,
)
from forgetir.models.registry import register_model

# Official prompt channel counts at the official width (dim 48).
_OFFICIAL_DIM = 48
_OFFICIAL_PROMPT_DIMS = (64, 128, 320)


def _round8(x: float) -> int:
    return max(8, int(round(x / 8)) * 8)


def default_prompt_dims(dim: int) -> tuple[int, int, int]:
    """Prompt channels for width ``dim``: the official (64, 128, 320) scaled by ``dim / 48``
    and rounded to a multiple of 8 (at least 8), so dim 48 gives the official values exactly.

    >>> default_prompt_dims(48), default_prompt_dims(16)
    ((64, 128, 320), (24, 40, 104))
    """
    p = [_round8(b * dim / _OFFICIAL_DIM) for b in _OFFICIAL_PROMPT_DIMS]
    return (p[0], p[1], p[2])


class PromptGenBlock(nn.Module):
    """``prompt_len`` learned (C, S, S) prompts, mixed by softmax weights predicted from the
    global mean of the feature map, resized bilinearly to the feature size, then a 3x3 conv.

    >>> block = PromptGenBlock(prompt_dim=8, prompt_len=5, prompt_size=4, lin_dim=16)
    >>> block(torch.rand(2, 16, 6, 10)).shape
    torch.Size([2, 8, 6, 10])
    """

    def __init__(self, prompt_dim: int, prompt_len: int, prompt_size: int, lin_dim: int) -> None:
        super().__init__()
        self.prompt_param = nn.Parameter(
            torch.rand(1, prompt_len, prompt_dim, prompt_size, prompt_size)
        )
        self.linear_layer = nn.Linear(lin_dim, prompt_len)
        self.conv3x3 = nn.Conv2d(prompt_dim, prompt_dim, 3, padding=1, bias=False)
        self.reference = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        weights = F.softmax(self.linear_layer(x.mean(dim=(-2, -1))), dim=1)
        params = self.prompt_param
        if self.reference:
            # Official op sequence: repeat the prompts per sample, weight, sum.
            prompt = weights[:, :, None, None, None] * params.repeat(b, 1, 1, 1, 1)
            prompt = prompt.sum(dim=1)
        else:
            # One (B, N) @ (N, C*S*S) product instead of a B-fold copy of all prompts.
            n, c, s1, s2 = params.shape[1:]
            prompt = (weights @ params.reshape(n, c * s1 * s2)).reshape(b, c, s1, s2)
        prompt = F.interpolate(prompt, (h, w), mode="bilinear")
        return self.conv3x3(prompt)


def _noise_heads(requested: int | None, level3_heads: int, widths: dict[str, int]) -> int:
    """Heads of the prompt-mixing blocks. Default: ``heads[2]`` as published or, where that
    does not divide every mixing width (narrow variants), the largest smaller count that does."""
    if requested is not None:
        bad = {k: w for k, w in widths.items() if requested < 1 or w % requested}
        if bad:
            raise ValueError(
                f"PromptIR argument noise_heads={requested} must divide the channels of "
                f"{', '.join(f'{k} ({w})' for k, w in bad.items())}"
            )
        return requested
    return max(h for h in range(1, level3_heads + 1) if all(w % h == 0 for w in widths.values()))


def _seq(name: str, values: Sequence[int], n: int) -> tuple[int, ...]:
    if isinstance(values, int | str):
        raise ValueError(f"PromptIR argument {name!r} needs {n} values, got {values!r}")
    values = tuple(int(v) for v in values)
    if len(values) != n:
        raise ValueError(f"PromptIR argument {name!r} needs {n} values, got {list(values)}")
    if any(v < 1 for v in values):
        raise ValueError(f"PromptIR argument {name!r} must be positive, got {list(values)}")
    return values


@register_model(
    "promptir",
    description="PromptIR as published (decoder prompts; 35.6 M parameters); "
    "loads the official checkpoint strictly.",
)
@register_model(
    "promptir-tiny",
    defaults={
        "dim": 16,
        "num_blocks": (1, 1, 1, 1),
        "num_refinement_blocks": 1,
        "heads": (1, 2, 4, 8),
        "prompt_sizes": (32, 16, 8),
    },
    # Prompt sides halved with the 64x64 CPU-scale crops (official: 64/32/16 for 128x128).
    description="PromptIR at width 16 with one block per level, for CPU-scale work.",
)
class PromptIR(RestormerModel):
    """PromptIR with prompts in the decoder (the published ``decoder=True`` model).

    Args:
        inp_channels / out_channels: image channels in and out.
        dim: width C of the first level; level i has C * 2**i channels.
        num_blocks: transformer blocks per encoder level (decoder levels mirror the first three).
        num_refinement_blocks: blocks after decoder level 1.
        heads: attention heads per level; ``C * 2**i`` must be divisible by ``heads[i]``.
        ffn_expansion_factor: GDFN hidden width is ``int(channels * factor)``.
        bias: conv biases (the published model has none).
        layer_norm_type: ``"WithBias"`` (published) or ``"BiasFree"``.
        prompt_len: number of learned prompts per prompt block.
        prompt_dims: prompt channels (p1, p2, p3) for decoder levels 1, 2 and the latent;
            ``None`` derives them from ``dim`` (see :func:`default_prompt_dims`).
        prompt_sizes: spatial side of the prompts; the official (64, 32, 16) matches the
            feature size of 128x128 training crops at each level.
        noise_heads: heads of the three prompt-mixing blocks ``noise_level1/2/3``; ``None``
            uses ``heads[2]`` as the official code does (4 at the defaults), lowered to the
            largest count that divides all three mixing widths when it does not.

    >>> model = PromptIR(dim=16, num_blocks=(1, 1, 1, 1), num_refinement_blocks=1)
    >>> model(torch.rand(1, 3, 16, 16)).shape
    torch.Size([1, 3, 16, 16])
    """

    size_multiple = 8

    def __init__(
        self,
        inp_channels: int = 3,
        out_channels: int = 3,
        dim: int = 48,
        num_blocks: Sequence[int] = (4, 6, 6, 8),
        num_refinement_blocks: int = 4,
        heads: Sequence[int] = (1, 2, 4, 8),
        ffn_expansion_factor: float = 2.66,
        bias: bool = False,
        layer_norm_type: str = "WithBias",
        prompt_len: int = 5,
        prompt_dims: Sequence[int] | None = None,
        prompt_sizes: Sequence[int] = (64, 32, 16),
        noise_heads: int | None = None,
    ) -> None:
        super().__init__()
        nb = _seq("num_blocks", num_blocks, 4)
        hd = _seq("heads", heads, 4)
        pd = _seq("prompt_dims", prompt_dims or default_prompt_dims(dim), 3)
        ps = _seq("prompt_sizes", prompt_sizes, 3)
        if dim < 2 or dim % 2:
            raise ValueError(f"PromptIR argument 'dim' must be a positive even number, got {dim}")
        if prompt_len < 1:
            raise ValueError(f"PromptIR argument 'prompt_len' must be positive, got {prompt_len}")
        if inp_channels != out_channels:
            raise ValueError(
                f"PromptIR adds the input image to the output: inp_channels ({inp_channels}) "
                f"must equal out_channels ({out_channels})"
            )
        c1, c2, c3, c4 = dim, dim * 2, dim * 4, dim * 8
        noise_widths = {"noise_level1": c2 + pd[0], "noise_level2": c3 + pd[1]}
        noise_widths["noise_level3"] = c4 + pd[2]
        nh = _noise_heads(noise_heads, hd[2], noise_widths)
        # Width of the (unused) reduced level-3 prompt: 256 for the official 320 channels.
        p3_reduced = _round8(pd[2] * 0.8)

        def stack(n: int, ch: int, h: int) -> TransformerStack:
            return transformer_stack(n, ch, h, ffn_expansion_factor, bias, layer_norm_type)

        def block(ch: int, h: int) -> TransformerBlock:
            return TransformerBlock(ch, h, ffn_expansion_factor, bias, layer_norm_type)

        def conv1x1(cin: int, cout: int) -> nn.Conv2d:
            return nn.Conv2d(cin, cout, 1, bias=bias)

        # Registration order below is the official state_dict order: keep it.
        self.patch_embed = OverlapPatchEmbed(inp_channels, c1, bias)
        self.prompt1 = PromptGenBlock(pd[0], prompt_len, ps[0], c2)
        self.prompt2 = PromptGenBlock(pd[1], prompt_len, ps[1], c3)
        self.prompt3 = PromptGenBlock(pd[2], prompt_len, ps[2], c4)
        self.chnl_reduce1 = conv1x1(pd[0], pd[0])
        self.chnl_reduce2 = conv1x1(pd[1], pd[1])
        self.chnl_reduce3 = conv1x1(pd[2], p3_reduced)
        self.reduce_noise_channel_1 = conv1x1(c1 + pd[0], c1)
        self.encoder_level1 = stack(nb[0], c1, hd[0])
        self.down1_2 = Downsample(c1)
        self.reduce_noise_channel_2 = conv1x1(c2 + pd[1], c2)
        self.encoder_level2 = stack(nb[1], c2, hd[1])
        self.down2_3 = Downsample(c2)
        self.reduce_noise_channel_3 = conv1x1(c3 + p3_reduced, c3)
        self.encoder_level3 = stack(nb[2], c3, hd[2])
        self.down3_4 = Downsample(c3)
        self.latent = stack(nb[3], c4, hd[3])

        self.up4_3 = Upsample(c3)
        self.reduce_chan_level3 = conv1x1(c2 + c3, c3)
        self.noise_level3 = block(c4 + pd[2], nh)
        self.reduce_noise_level3 = conv1x1(c4 + pd[2], c3)
        self.decoder_level3 = stack(nb[2], c3, hd[2])
        self.up3_2 = Upsample(c3)
        self.reduce_chan_level2 = conv1x1(c3, c2)
        self.noise_level2 = block(c3 + pd[1], nh)
        self.reduce_noise_level2 = conv1x1(c3 + pd[1], c3)
        self.decoder_level2 = stack(nb[1], c2, hd[1])
        self.up2_1 = Upsample(c2)
        self.noise_level1 = block(c2 + pd[0], nh)
        self.reduce_noise_level1 = conv1x1(c2 + pd[0], c2)
        self.decoder_level1 = stack(nb[0], c2, hd[0])
        self.refinement = stack(num_refinement_blocks, c2, hd[0])
        self.output = nn.Conv2d(c2, out_channels, 3, padding=1, bias=bias)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        enc1, enc2, enc3, latent = self._encoder(x)

        latent = torch.cat([latent, self.prompt3(latent)], 1)
        latent = self.reduce_noise_level3(self.noise_level3(latent))
        dec3 = self.reduce_chan_level3(torch.cat([self.up4_3(latent), enc3], 1))
        dec3 = self.decoder_level3(dec3)

        dec3 = torch.cat([dec3, self.prompt2(dec3)], 1)
        dec3 = self.reduce_noise_level2(self.noise_level2(dec3))
        dec2 = self.reduce_chan_level2(torch.cat([self.up3_2(dec3), enc2], 1))
        dec2 = self.decoder_level2(dec2)

        dec2 = torch.cat([dec2, self.prompt1(dec2)], 1)
        dec2 = self.reduce_noise_level1(self.noise_level1(dec2))
        dec1 = torch.cat([self.up2_1(dec2), enc1], 1)
        dec1 = self.refinement(self.decoder_level1(dec1))
        return self.output(dec1) + x
