"""Encoder-space unlearning (Li, Hsu, Chen & Marculescu, ICLR 2024), the second seed.

Only the encoder E is trained (the decoder stays frozen); E0 is the original encoder::

    L = w_r * ||E(x_r) - E0(x_r)||^2 + alpha * ||E(x_f) - E0(n)||^2
    n = clamp(randn * std(x_f) + mean(x_f), 0, 1)

``||.||^2`` is the mean squared error over the bottleneck features (``model.encode``). The noise
statistics are those of the forget inputs, per image and channel over (H, W) by default
(``noise_stats="batch"``: per channel over the whole batch). The retain term uses retain
*inputs* only, never targets, so a proxy set of forget-free images from another source works in
place of the real retain set (``proxy=True``: the caller passes it as ``retain_batch``; its
``"degraded"`` entry is used, or ``"clean"`` when the proxy has only clean images).
Unlike the released baseline code, the forget term is not multiplied by ``(1 + label)``
(which is 0 for forget samples and silently drops it).

Retrain-like target: not supported. The method works in the original encoder's feature space and
UT's features live in a different one; use ``accurate-forgetting`` or ``random-target`` with
``target="retrain-like"`` instead.

Example:
    >>> import torch
    >>> from forgetir.methods import create_method
    >>> from forgetir.models import create_model
    >>> m = create_method("encoder-noise", create_model("promptir-tiny"))
    >>> b = {"degraded": torch.rand(2, 3, 16, 16), "clean": torch.rand(2, 3, 16, 16)}
    >>> sorted(m.loss(b, b))
    ['forget_feat_mse', 'loss', 'retain_feat_mse']
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from forgetir.config import NON_NEGATIVE, ConfigError
from forgetir.methods.base import Batch, MethodConfig, UnlearningMethod, gaussian_like, require
from forgetir.methods.registry import register_method
from forgetir.models.external import encode, encoder_parameters, has_encoder

_NOISE_STATS = ("image", "batch")


@dataclass
class EncoderNoiseConfig(MethodConfig):
    RANGES = {"alpha": NON_NEGATIVE, "w_r": NON_NEGATIVE}
    alpha: float = 0.2  # forget weight; the design notes give 0.1-0.2 (not in the abstract)
    w_r: float = 1.0  # retain weight
    noise_stats: str = "image"  # image: per image & channel; batch: per channel over the batch
    proxy: bool = False  # retain_batch is a proxy set: inputs only, "clean" accepted as input

    def __post_init__(self) -> None:
        if self.noise_stats not in _NOISE_STATS:
            raise ConfigError(
                f"noise_stats {self.noise_stats!r} unknown; valid: {', '.join(_NOISE_STATS)}"
            )
        if self.alpha < 0 or self.w_r < 0:
            raise ConfigError("alpha and w_r must be >= 0")


@register_method("encoder-noise")
class EncoderNoise(UnlearningMethod):
    """Pull forget embeddings to the original encoder's embedding of Gaussian noise, keep retain
    embeddings; decoder frozen (``trainable_parameters`` is ``model.encoder_parameters()``)."""

    name = "encoder-noise"
    summary = (
        "L = w_r*||E(x_r) - E0(x_r)||^2 + alpha*||E(x_f) - E0(n)||^2, "
        "n = clamp(randn*std(x_f) + mean(x_f), 0, 1); decoder frozen (Li et al. ICLR 2024)"
    )
    Config = EncoderNoiseConfig
    default_optim = {"name": "adamw", "lr": 1e-4, "betas": [0.9, 0.95], "weight_decay": 0.05}
    recommended_schedule = {"note": "retain set may be a proxy set of forget-free images"}
    retrain_like = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.needs_retain = self.cfg.w_r != 0
        if not has_encoder(self.model):
            raise TypeError(
                f"encoder-noise needs the model's encoder: encode() and encoder_parameters(), "
                f"or a forgetir_encoder sub-module name (forgetir.models.external.set_encoder); "
                f"got {type(self.model).__name__} with neither"
            )

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in encoder_parameters(self.model) if p.requires_grad]

    def _retain_inputs(self, batch: Batch | None) -> torch.Tensor:
        if self.cfg.proxy and batch is not None and "degraded" not in batch:
            return require(batch, "clean", self.name, "retain (proxy)")
        return require(batch, "degraded", self.name, "retain")

    def _loss(self, forget_batch: Batch | None, retain_batch: Batch | None) -> dict[str, Any]:
        x_f = require(forget_batch, "degraded", self.name, "forget")
        noise = gaussian_like(x_f, self.generator, self.cfg.noise_stats)
        with torch.no_grad():
            target_f = encode(self.original, noise)
        forget = F.mse_loss(encode(self.model, x_f), target_f)
        loss = self.cfg.alpha * forget
        logs = {"forget_feat_mse": float(forget.detach())}
        if retain_batch is not None and self.cfg.w_r != 0:
            x_r = self._retain_inputs(retain_batch)
            with torch.no_grad():
                target_r = encode(self.original, x_r)
            retain = F.mse_loss(encode(self.model, x_r), target_r)
            loss = loss + self.cfg.w_r * retain
            logs["retain_feat_mse"] = float(retain.detach())
        return {"loss": loss, **logs}
