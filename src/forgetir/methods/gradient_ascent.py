"""Gradient ascent on the forget data ("max loss"): ``L = -L1(N(x_f), y_f)``.

The seed paper's starting point (it collapses the whole model) and the second seed's
"max loss" baseline. Needs no retain data. ``forget_bound`` optionally hinges the ascent per
image as in ``accurate-forgetting``. Retrain-like target: not supported (the method is defined by
ascending away from the clean target).

Example:
    >>> import torch
    >>> from forgetir.methods import create_method
    >>> from forgetir.models import create_model
    >>> m = create_method("gradient-ascent", create_model("promptir-tiny"))
    >>> b = {"degraded": torch.rand(1, 3, 16, 16), "clean": torch.rand(1, 3, 16, 16)}
    >>> float(m.loss(b, None)["loss"]) < 0
    True
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
class GradientAscentConfig(ForgetStopConfig):
    forget_bound: float | None = None  # per-image hinge on the ascent; None: unbounded

    def __post_init__(self) -> None:
        if self.forget_bound is not None and self.forget_bound <= 0:
            raise ConfigError(f"forget_bound must be > 0 or null, got {self.forget_bound}")


@register_method("gradient-ascent")
class GradientAscent(UnlearningMethod):
    """Maximise the restoration loss on the forget data."""

    name = "gradient-ascent"
    summary = "L = -L1(N(x_f), y_f) on D_f only (max loss)"
    Config = GradientAscentConfig
    needs_retain = False
    default_optim = {"name": "adam", "lr": 2e-4, "betas": [0.9, 0.999], "weight_decay": 0.0}
    retrain_like = None

    def _loss(self, forget_batch: Batch | None, retain_batch: Batch | None) -> dict[str, Any]:
        x_f, y_f = self.forget_pair(forget_batch)
        out_f = self.net(x_f)
        err = l1_per_image(out_f, y_f)
        loss = -hinged_ascent(err, self.cfg.forget_bound)
        return {
            "loss": loss,
            "forget_l1": float(err.detach().mean()),
            "forget_psnr": psnr_mean(out_f, y_f),
        }
