"""NegGrad+ (Kurmanji et al., NeurIPS 2023): descend on retain, ascend on forget, one loss.

``L = alpha * L1(N(x_r), y_r) - (1 - alpha) * L1(N(x_f), y_f)``. Kurmanji et al. tune alpha per
setting and weight the retain term heavily; the default 0.999 follows that (with L1 the ascent
weight is then small: raise it, e.g. 0.9, for faster forgetting at our scale). ``forget_bound``
optionally hinges the ascent per image. Retrain-like target: not supported (defined by ascent).

Example:
    >>> import torch
    >>> from forgetir.methods import create_method
    >>> from forgetir.models import create_model
    >>> m = create_method("neggrad-plus", create_model("promptir-tiny"), overrides={"alpha": 0.9})
    >>> b = {"degraded": torch.rand(1, 3, 16, 16), "clean": torch.rand(1, 3, 16, 16)}
    >>> sorted(m.loss(b, b))
    ['forget_l1', 'forget_psnr', 'loss', 'retain_l1']
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from forgetir.config import ConfigError
from forgetir.methods.base import (
    Batch,
    ForgetStopConfig,
    UnlearningMethod,
    hinged_ascent,
    l1_per_image,
    psnr_mean,
)
from forgetir.methods.registry import register_method


@dataclass
class NegGradPlusConfig(ForgetStopConfig):
    alpha: float = 0.999  # retain weight; the forget (ascent) weight is 1 - alpha
    forget_bound: float | None = None  # per-image hinge on the ascent; None: unbounded

    def __post_init__(self) -> None:
        if not 0.0 <= self.alpha <= 1.0:
            raise ConfigError(f"alpha must be in [0, 1], got {self.alpha}")
        if self.forget_bound is not None and self.forget_bound <= 0:
            raise ConfigError(f"forget_bound must be > 0 or null, got {self.forget_bound}")


@register_method("neggrad-plus")
class NegGradPlus(UnlearningMethod):
    """Weighted retain descent plus forget ascent in one step."""

    name = "neggrad-plus"
    summary = "L = alpha*L1(N(x_r), y_r) - (1 - alpha)*L1(N(x_f), y_f), alpha = 0.999"
    Config = NegGradPlusConfig
    default_optim = {"name": "adam", "lr": 2e-4, "betas": [0.9, 0.999], "weight_decay": 0.0}
    retrain_like = None

    def _loss(self, forget_batch: Batch | None, retain_batch: Batch | None) -> dict[str, Any]:
        a = self.cfg.alpha
        x_f, y_f = self.forget_pair(forget_batch)
        out_f = self.net(x_f)
        err = l1_per_image(out_f, y_f)
        retain = self.retain_l1(retain_batch)
        loss = a * retain - (1 - a) * hinged_ascent(err, self.cfg.forget_bound)
        return {
            "loss": loss,
            "forget_l1": float(err.detach().mean()),
            "forget_psnr": psnr_mean(out_f, y_f),
            "retain_l1": float(retain.detach()),
        }
