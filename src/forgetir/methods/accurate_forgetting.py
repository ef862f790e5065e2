"""Accurate forgetting (Su & Zheng, 2024), the seed paper's method.

Collapse target (the paper, Algorithm 1)::

    L = -w_ul * L1(N(x_f), y_f) + w_adv * L1(N(x_f), y'_f) + w_r * L1(N(x_r), y_r)
    y'_f = clamp(y_f + p, 0, 1),  p ~ U(-0.5, 0.5) elementwise, drawn from the method's generator

Why 1:1 does not blow up: per pixel with error d = N(x) - y (ignoring the clamp),
``E|d - p| = d^2 + 1/4`` for ``|d| <= 0.5`` and ``|d|`` beyond, so the two forget terms sum to
``(|d| - 1/2)^2`` at 1:1 and are flat past ``|d| = 0.5``: the adversarial term is an implicit
bound. With w_adv < w_ul the ascent wins everywhere (the paper's 0.5:1 row collapses to ~5 dB);
with w_adv > w_ul the minimum moves to ``|d| = w_ul / (2 w_adv)`` (1.5:1 forgets less).

Options beyond the paper (faithful defaults stay): ``forget_bound`` hinges the ascent per image
(it stops pushing once the image's L1 error passes the bound; with ``bound_relative`` the bound
is a multiple of the input's own error L1(x_f, y_f), so 1.0 means "no better than doing
nothing"); ``forget_floor`` makes ``should_stop`` fire once the forget PSNR is low enough.

Example:
    >>> import torch
    >>> from forgetir.methods import create_method
    >>> from forgetir.models import create_model
    >>> m = create_method("accurate-forgetting", create_model("promptir-tiny"),
    ...                   generator=torch.Generator().manual_seed(0))
    >>> b = {"degraded": torch.rand(2, 3, 16, 16), "clean": torch.rand(2, 3, 16, 16)}
    >>> out = m.loss(b, b)
    >>> sorted(k for k in out if k != "loss")
    ['adv_l1', 'forget_l1', 'forget_psnr', 'retain_l1']
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from forgetir.config import NON_NEGATIVE, ConfigError
from forgetir.methods.base import (
    Batch,
    ForgetStopConfig,
    UnlearningMethod,
    hinged_ascent,
    l1,
    l1_per_image,
    psnr_mean,
    uniform_perturbed,
)
from forgetir.methods.registry import register_method


@dataclass
class AccurateForgettingConfig(ForgetStopConfig):
    RANGES = {"w_ul": NON_NEGATIVE, "w_adv": NON_NEGATIVE, "w_r": NON_NEGATIVE}
    w_ul: float = 1.0  # instance-wise unlearning term (-L1 to the clean target)
    w_adv: float = 1.0  # adversarial-example term (L1 to y')
    w_r: float = 1.0  # retain term
    adv_range: float = 0.5  # p ~ U(-adv_range, adv_range)
    use_instance: bool = True  # False: the paper's "without instance-wise unlearning" ablation
    use_adv: bool = True  # False: the paper's "without adversarial examples" ablation
    forget_bound: float | None = None  # per-image hinge on the ascent; None: unbounded (paper)
    bound_relative: bool = False  # bound in units of the input's error L1(x_f, y_f)

    def __post_init__(self) -> None:
        if self.adv_range < 0:
            raise ConfigError(f"adv_range must be >= 0, got {self.adv_range}")
        if self.forget_bound is not None and self.forget_bound <= 0:
            raise ConfigError(f"forget_bound must be > 0 or null, got {self.forget_bound}")


@register_method("accurate-forgetting")
class AccurateForgetting(UnlearningMethod):
    """The seed paper's instance-wise unlearning with adversarial-example regularisation.

    Retrain-like target: the instance-wise term pulls towards ``t_f = x_f`` (or the reference
    UT model's output) instead of ascending away from ``y_f``, and the adversarial target is
    centred on ``t_f``: ``L = w_ul*L1(N(x_f), t_f) + w_adv*L1(N(x_f), clamp(t_f + p)) +
    w_r*L1(N(x_r), y_r)``. ``forget_l1`` is always logged against the clean ``y_f``.
    """

    name = "accurate-forgetting"
    summary = (
        "L = -w_ul*L1(N(x_f), y_f) + w_adv*L1(N(x_f), clamp(y_f + U(-0.5, 0.5))) "
        "+ w_r*L1(N(x_r), y_r)  (Su & Zheng 2024; 1:1:1)"
    )
    Config = AccurateForgettingConfig
    default_optim = {"name": "adam", "lr": 2e-4, "betas": [0.9, 0.999], "weight_decay": 0.0}
    recommended_schedule = {"epochs": 2, "batch_size": 16, "patch_size": 128, "flips": True}
    retrain_like = (
        "pull N(x_f) towards t_f = x_f (or reference(x_f)); adversarial target clamp(t_f + p)"
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.needs_retain = self.cfg.w_r != 0

    def _loss(self, forget_batch: Batch | None, retain_batch: Batch | None) -> dict[str, Any]:
        cfg = self.cfg
        x_f, y_f = self.forget_pair(forget_batch)
        out_f = self.net(x_f)
        logs: dict[str, Any] = {}
        forget_err = l1_per_image(out_f, y_f)
        loss = torch.zeros((), device=out_f.device, dtype=out_f.dtype)

        if self.target == "collapse":
            centre = y_f
            if cfg.use_instance:
                scale = l1_per_image(x_f, y_f) if cfg.bound_relative else None
                loss = loss - cfg.w_ul * hinged_ascent(forget_err, cfg.forget_bound, scale)
        else:
            centre = self.retrain_like_target(x_f)
            identity = l1(out_f, centre)
            logs["identity_l1"] = float(identity.detach())
            if cfg.use_instance:
                loss = loss + cfg.w_ul * identity

        # Drawn every step (even when the term is off) so ablations share one random stream.
        y_adv = uniform_perturbed(centre, cfg.adv_range, self.generator)
        adv = l1(out_f, y_adv)
        if cfg.use_adv:
            loss = loss + cfg.w_adv * adv

        if retain_batch is not None and cfg.w_r != 0:
            retain = self.retain_l1(retain_batch)
            loss = loss + cfg.w_r * retain
            logs["retain_l1"] = float(retain.detach())

        logs["forget_l1"] = float(forget_err.detach().mean())
        logs["forget_psnr"] = psnr_mean(out_f, y_f)
        logs["adv_l1"] = float(adv.detach())
        return {"loss": loss, **logs}
