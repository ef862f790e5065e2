"""The contract every restoration model in forgetir keeps.

Images are (B, C, H, W) floats in [0, 1]. Models accept any H and W: the input is reflect-padded
to the architecture's size multiple and the output cropped back, so the official networks'
crash on sides that are not multiples of 8 cannot happen here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn


class AuxLossMixin:
    """For models whose training forwards add an auxiliary loss (a mixture-of-experts router's
    balance loss): call :meth:`record_aux_loss` in ``forward``. Inside
    :func:`collect_aux_losses` (the training engine wraps every step's loss in it) the terms
    are collected and added to the step's loss; elsewhere they are dropped, so evaluation and
    stray forwards keep no autograd graphs alive. Works on any ``nn.Module`` subclass.
    """

    _aux_sink: list[torch.Tensor] | None = None

    def record_aux_loss(self, loss: torch.Tensor) -> None:
        """Add ``loss`` (already weighted) to the current step's loss, if one is collecting."""
        if self._aux_sink is not None:
            self._aux_sink.append(loss)


@contextlib.contextmanager
def collect_aux_losses(model: nn.Module) -> Iterator[list[torch.Tensor]]:
    """Collect the auxiliary losses that ``model``'s sub-modules record during the block.

    Example:
        >>> class Net(AuxLossMixin, nn.Linear):
        ...     def forward(self, x):
        ...         self.record_aux_loss(x.abs().mean())
        ...         return super().forward(x)
        >>> net = Net(2, 2)
        >>> with collect_aux_losses(net) as aux:
        ...     _ = net(torch.ones(1, 2))
        >>> [float(a) for a in aux]
        [1.0]
    """
    sink: list[torch.Tensor] = []
    owners = [m for m in model.modules() if isinstance(m, AuxLossMixin)]
    outer = [m._aux_sink for m in owners]  # nested blocks: the enclosing one collects again
    for m in owners:
        m._aux_sink = sink
    try:
        yield sink
    finally:
        for m, previous in zip(owners, outer, strict=True):
            m._aux_sink = previous


class RestorationModel(nn.Module):
    """Base class: padding/cropping in ``forward``, bottleneck features in ``encode``.

    Subclasses implement ``_forward(x)`` (input already padded) and ``_encode(x)`` (the
    bottleneck / latent features for a padded input) and set ``size_multiple``.
    """

    size_multiple: int = 8

    def _pad(self, x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        if x.ndim != 4:
            raise ValueError(f"expected a (B, C, H, W) batch, got shape {tuple(x.shape)}")
        h, w = x.shape[-2:]
        m = self.size_multiple
        ph, pw = (-h) % m, (-w) % m
        if ph or pw:
            # Reflect needs pad < side; replicate covers tiny inputs.
            mode = "reflect" if ph < h and pw < w else "replicate"
            x = F.pad(x, (0, pw, 0, ph), mode=mode)
        return x, h, w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xp, h, w = self._pad(x)
        return self._forward(xp)[..., :h, :w]

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Bottleneck (latent) features of ``x``: what the encoder-space unlearning method
        (``encoder-noise``) pulls towards or away from the original model's features.

        Returns a (B, C_latent, ceil(H/8), ceil(W/8)) tensor.
        """
        xp, _, _ = self._pad(x)
        return self._encode(xp)

    def encode_features(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Every encoder feature the decoder reads, bottleneck last (skip connections first).

        A model whose decoder reads the bottleneck only returns ``(encode(x),)``.
        """
        xp, _, _ = self._pad(x)
        return self._encode_features(xp)

    def _encode_features(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return (self._encode(x),)

    def encoder_parameters(self) -> list[nn.Parameter]:
        """Parameters that ``encode`` depends on (the rest form the decoder)."""
        raise NotImplementedError

    def _forward(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _encode(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


class RestormerModel(RestorationModel):
    """A :class:`RestorationModel` whose encoder is Restormer's four levels.

    Subclasses register the modules named in ``ENCODER`` (in whatever order their published
    ``state_dict`` needs) and implement ``_forward`` with :meth:`_encoder`'s skip features.
    """

    ENCODER = (
        "patch_embed",
        "encoder_level1",
        "down1_2",
        "encoder_level2",
        "down2_3",
        "encoder_level3",
        "down3_4",
        "latent",
    )

    def _encoder(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(enc1, enc2, enc3, latent): the three skip features and the bottleneck."""
        enc1 = self.encoder_level1(self.patch_embed(x))
        enc2 = self.encoder_level2(self.down1_2(enc1))
        enc3 = self.encoder_level3(self.down2_3(enc2))
        return enc1, enc2, enc3, self.latent(self.down3_4(enc3))

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        return self._encoder(x)[3]

    def _encode_features(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        # the decoder concatenates enc1..enc3 (skip connections) with the upsampled bottleneck
        return self._encoder(x)

    def encoder_parameters(self) -> list[nn.Parameter]:
        return [p for name in self.ENCODER for p in getattr(self, name).parameters()]
