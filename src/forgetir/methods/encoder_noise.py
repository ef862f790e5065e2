"""Encoder-space unlearning (Li, Hsu, Chen & Marculescu, ICLR 2024), the second seed.

Only the encoder E is trained (the decoder stays frozen); E0 is the original encoder::

    L = w_r * D(E(x_r), E0(x_r)) + alpha * D(E(x_f), E0(n))
    n = clamp(randn * std + mean, 0, 1)

**What is constrained** (``features``). In the paper's MAGE model the decoder reads one latent.
PromptIR's and AdaIR's decoders also read the encoder's three skip features (levels 1-3,
concatenated into the decoder at each scale), so pulling only the bottleneck leaves most of
what the decoder sees free. ``features="decoder"`` (default) constrains every feature the
decoder reads (``model.encode_features``): ``D`` is the mean over those features of each one's
mean squared error, so each level weighs the same whatever its size. ``features="latent"`` is
the bottleneck alone (the behaviour before this option).

**Noise images** (``noise_stats``). The released code (``engine_unlearn.py`` of
jpmorganchase/i2i_mage, branch ``i2i``) draws ``clamp(randn_like(samples) * std(samples) +
mean(samples), 0, 1)`` with one scalar mean and std over its whole mini-batch, which mixes forget
and retain images: ``noise_stats="release"`` (default) does the same over the forget and retain
inputs of a step together (the forget inputs alone when no retain batch is given).
``"image"``: per image and channel over (H, W) of the forget inputs; ``"batch"``: per channel
over the forget batch.

**Weights.** The release computes both terms on one mixed batch with per-sample weights
``(1 + l)`` on the retain term and ``(1 - l)`` on the forget term (l = +1 retain, -1 forget):
each term counts only its own samples, times 2, averaged over the whole batch; the forget term
is *not* dropped there. Here forget and retain come in separate batches, each term averaged over
its own batch: the same as the release with half-forget, half-retain batches. (The release's
*baseline* file ``engine_baseline.py`` weights both terms by ``(1 + l)``, which zeroes its
"encoder noise" baseline's forget term on forget samples; that is the baseline, not this
method.)

The retain term uses retain *inputs* only, never targets, so a proxy set of forget-free images
from another source works in place of the real retain set (``proxy=True``: the caller passes it
as ``retain_batch``; its ``"degraded"`` entry is used, or ``"clean"`` when the proxy has only
clean images).

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
from forgetir.methods.base import (
    Batch,
    MethodConfig,
    UnlearningMethod,
    batch_noise,
    gaussian_like,
    require,
)
from forgetir.methods.registry import register_method
from forgetir.models.external import encode, encoder_parameters, has_encoder

_NOISE_STATS = ("release", "image", "batch")
_FEATURES = ("decoder", "latent")


@dataclass
class EncoderNoiseConfig(MethodConfig):
    RANGES = {"alpha": NON_NEGATIVE, "w_r": NON_NEGATIVE}
    alpha: float = 0.2  # forget weight; the second seed paper gives 0.1-0.2
    w_r: float = 1.0  # retain weight
    noise_stats: str = "release"  # release: one mean/std over forget+retain; image; batch
    features: str = "decoder"  # decoder: skips + bottleneck (what the decoder reads); latent
    proxy: bool = False  # retain_batch is a proxy set: inputs only, "clean" accepted as input

    def __post_init__(self) -> None:
        if self.noise_stats not in _NOISE_STATS:
            raise ConfigError(
                f"noise_stats {self.noise_stats!r} unknown; valid: {', '.join(_NOISE_STATS)}"
            )
        if self.features not in _FEATURES:
            raise ConfigError(f"features {self.features!r} unknown; valid: {', '.join(_FEATURES)}")
        if self.alpha < 0 or self.w_r < 0:
            raise ConfigError("alpha and w_r must be >= 0")


@register_method("encoder-noise")
class EncoderNoise(UnlearningMethod):
    """Pull forget embeddings to the original encoder's embedding of Gaussian noise, keep retain
    embeddings; decoder frozen (``trainable_parameters`` is ``model.encoder_parameters()``)."""

    name = "encoder-noise"
    summary = (
        "L = w_r*||E(x_r) - E0(x_r)||^2 + alpha*||E(x_f) - E0(n)||^2 over every encoder feature "
        "the decoder reads, n = clamp(randn*std + mean, 0, 1) with the batch's scalar statistics "
        "(as released); decoder frozen (Li et al. ICLR 2024)"
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

    def _features(self, model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        # A model of the user's own may expose only an encoder (see forgetir.models.external).
        if self.cfg.features == "latent" or not hasattr(model, "encode_features"):
            return (encode(model, x),)
        return tuple(model.encode_features(x))

    def _distance(self, x: torch.Tensor, target: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """Mean over the constrained features of each feature's mean squared error."""
        feats = self._features(self.model, x)
        return torch.stack([F.mse_loss(a, b) for a, b in zip(feats, target, strict=True)]).mean()

    def _noise(self, x_f: torch.Tensor, x_r: torch.Tensor | None) -> torch.Tensor:
        if self.cfg.noise_stats != "release":
            return gaussian_like(x_f, self.generator, self.cfg.noise_stats)
        # as released: scalar mean/std over the step's whole batch, forget and retain together
        pool = x_f if x_r is None or x_r.shape[1:] != x_f.shape[1:] else torch.cat([x_f, x_r])
        pool = pool.detach()
        std = pool.std() if pool.numel() > 1 else torch.zeros((), dtype=pool.dtype)
        z = batch_noise(torch.randn, x_f.shape, self.generator, x_f.dtype)
        return (z.to(x_f.device) * std + pool.mean()).clamp(0, 1)

    def _loss(self, forget_batch: Batch | None, retain_batch: Batch | None) -> dict[str, Any]:
        x_f = require(forget_batch, "degraded", self.name, "forget")
        use_retain = retain_batch is not None and self.cfg.w_r != 0
        x_r = self._retain_inputs(retain_batch) if use_retain else None
        noise = self._noise(x_f, x_r)
        with torch.no_grad():
            target_f = self._features(self.original, noise)
        forget = self._distance(x_f, target_f)
        loss = self.cfg.alpha * forget
        logs = {"forget_feat_mse": float(forget.detach())}
        if x_r is not None:
            with torch.no_grad():
                target_r = self._features(self.original, x_r)
            retain = self._distance(x_r, target_r)
            loss = loss + self.cfg.w_r * retain
            logs["retain_feat_mse"] = float(retain.detach())
        return {"loss": loss, **logs}
