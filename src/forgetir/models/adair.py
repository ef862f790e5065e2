"""AdaIR (Cui et al. 2024): a Restormer with frequency mining/modulation in the decoder.

Our own implementation, written from the published architecture; at the default arguments its
``state_dict`` has exactly the official names, shapes and order (587 entries, 28,784,824
parameters), so the official checkpoints load strictly. Every channel count is derived from the
constructor arguments, so narrow variants (``adair-tiny``) build too.

Example:
    >>> import torch
    >>> from forgetir.models import create_model
    >>> model = create_model("adair-tiny")
    >>> model(torch.rand(1, 3, 37, 53)).shape
    torch.Size([1, 3, 37, 53])
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from forgetir.models.adair_freq import FrequencyModule
from forgetir.models.base import RestormerModel
from forgetir.models.layers import Downsample, OverlapPatchEmbed, Upsample, transformer_stack
from forgetir.models.registry import register_model

_TINY = {"dim": 16, "num_blocks": (1, 1, 1, 1), "num_refinement_blocks": 1}


@register_model("adair", description="AdaIR as published (dim 48, blocks 4/6/6/8), 28.8M params")
@register_model("adair-tiny", defaults=_TINY, description="AdaIR, width 16, one block per level")
class AdaIR(RestormerModel):
    """AdaIR: Restormer encoder/decoder with frequency modules ``fre1/fre2/fre3``.

    ``fre1`` acts on the latent, ``fre2`` on the level-3 and ``fre3`` on the level-2 decoder
    output; each sees the input image resized to that feature's size. ``decoder=False`` drops
    them (a plain Restormer with AdaIR's layout). Output = final conv + input image.

    ``encode`` returns the output of ``latent`` *before* ``fre1``: the encoder's own feature,
    which does not depend on any decoder-side parameter (``fre1`` also reads the image).
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
        decoder: bool = True,
    ) -> None:
        super().__init__()
        if len(num_blocks) != 4 or len(heads) != 4:
            raise ValueError(
                f"num_blocks and heads need 4 entries (one per level), got {list(num_blocks)} "
                f"and {list(heads)}"
            )
        if inp_channels != out_channels:
            raise ValueError(
                f"the global residual adds the input to the output: inp_channels "
                f"({inp_channels}) must equal out_channels ({out_channels})"
            )
        d1, d2, d3, d4 = dim, dim * 2, dim * 4, dim * 8
        b1, b2, b3, b4 = num_blocks
        h1, h2, h3, h4 = heads

        def stack(n: int, d: int, h: int) -> nn.Sequential:
            return transformer_stack(n, d, h, ffn_expansion_factor, bias, layer_norm_type)

        self.patch_embed = OverlapPatchEmbed(inp_channels, d1, bias)
        self.decoder = decoder
        # Registered right after patch_embed, as published, so the state_dict order matches.
        if decoder:
            self.fre1 = FrequencyModule(d4, h3, bias, in_dim=inp_channels)
            self.fre2 = FrequencyModule(d3, h3, bias, in_dim=inp_channels)
            self.fre3 = FrequencyModule(d2, h3, bias, in_dim=inp_channels)

        self.encoder_level1 = stack(b1, d1, h1)
        self.down1_2 = Downsample(d1)
        self.encoder_level2 = stack(b2, d2, h2)
        self.down2_3 = Downsample(d2)
        self.encoder_level3 = stack(b3, d3, h3)
        self.down3_4 = Downsample(d3)
        self.latent = stack(b4, d4, h4)

        self.up4_3 = Upsample(d4)
        self.reduce_chan_level3 = nn.Conv2d(d4, d3, 1, bias=bias)
        self.decoder_level3 = stack(b3, d3, h3)
        self.up3_2 = Upsample(d3)
        self.reduce_chan_level2 = nn.Conv2d(d3, d2, 1, bias=bias)
        self.decoder_level2 = stack(b2, d2, h2)
        self.up2_1 = Upsample(d2)
        # Level 1 of the decoder and the refinement run at 2 * dim (no channel reduction).
        self.decoder_level1 = stack(b1, d2, h1)
        self.refinement = stack(num_refinement_blocks, d2, h1)
        self.output = nn.Conv2d(d2, out_channels, 3, padding=1, bias=bias)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        enc1, enc2, enc3, latent = self._encoder(x)
        if self.decoder:
            latent = self.fre1(x, latent)
        dec3 = self.reduce_chan_level3(torch.cat([self.up4_3(latent), enc3], 1))
        dec3 = self.decoder_level3(dec3)
        if self.decoder:
            dec3 = self.fre2(x, dec3)
        dec2 = self.reduce_chan_level2(torch.cat([self.up3_2(dec3), enc2], 1))
        dec2 = self.decoder_level2(dec2)
        if self.decoder:
            dec2 = self.fre3(x, dec2)
        dec1 = self.decoder_level1(torch.cat([self.up2_1(dec2), enc1], 1))
        return self.output(self.refinement(dec1)) + x
