"""Random targets ("noisy label" / amnesiac relabelling) for the forget data, plus retain L1.

``L = L1(N(x_f), r_f) + w_r * L1(N(x_r), y_r)`` with a fresh random target each step:

- ``kind="perturbed"``: the seed paper's adversarial target ``r_f = clamp(y_f + U(-0.5, 0.5))``;
- ``kind="gaussian"``: an amnesiac-style random image ``r_f = clamp(randn*std(y_f) + mean(y_f))``
  (mean/std per image and channel), the second seed's "noisy label" baseline.

This is also SalUn's default inner method (random labelling with a retain term).

Retrain-like target: the forget data is relabelled with what UT returns, ``r_f = t_f = x_f`` (or
``reference(x_f)``); ``kind`` is then unused.

Example:
    >>> import torch
    >>> from forgetir.methods import create_method
    >>> from forgetir.models import create_model
    >>> m = create_method("random-target", create_model("promptir-tiny"),
    ...                   overrides={"kind": "gaussian"})
    >>> b = {"degraded": torch.rand(1, 3, 16, 16), "clean": torch.rand(1, 3, 16, 16)}
    >>> sorted(m.loss(b, b))
    ['forget_l1', 'forget_psnr', 'loss', 'retain_l1', 'target_l1']
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from forgetir.config import NON_NEGATIVE, ConfigError
from forgetir.methods.base import (
    Batch,
    ForgetStopConfig,
    UnlearningMethod,
    gaussian_like,
    l1,
    psnr_mean,
    uniform_perturbed,
)
from forgetir.methods.registry import register_method

_KINDS = ("perturbed", "gaussian")


@dataclass
class RandomTargetConfig(ForgetStopConfig):
    RANGES = {"w_r": NON_NEGATIVE, "adv_range": NON_NEGATIVE}
    kind: str = "perturbed"  # perturbed: clamp(y + U(-r, r)); gaussian: random Gaussian image
    adv_range: float = 0.5  # r for kind=perturbed
    w_r: float = 1.0  # retain weight

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ConfigError(f"kind {self.kind!r} unknown; valid: {', '.join(_KINDS)}")
        if self.adv_range < 0:
            raise ConfigError(f"adv_range must be >= 0, got {self.adv_range}")


@register_method("random-target")
class RandomTarget(UnlearningMethod):
    """Fit the forget inputs to random targets while keeping the retain data."""

    name = "random-target"
    summary = (
        "L = L1(N(x_f), r_f) + w_r*L1(N(x_r), y_r), r_f = clamp(y_f + U(-0.5, 0.5)) "
        "or a Gaussian image (kind)"
    )
    Config = RandomTargetConfig
    default_optim = {"name": "adam", "lr": 2e-4, "betas": [0.9, 0.999], "weight_decay": 0.0}
    retrain_like = "relabel the forget data with t_f = x_f (or reference(x_f)); kind unused"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.needs_retain = self.cfg.w_r != 0

    def _loss(self, forget_batch: Batch | None, retain_batch: Batch | None) -> dict[str, Any]:
        x_f, y_f = self.forget_pair(forget_batch)
        if self.target == "retrain-like":
            r_f = self.retrain_like_target(x_f)
        elif self.cfg.kind == "perturbed":
            r_f = uniform_perturbed(y_f, self.cfg.adv_range, self.generator)
        else:
            r_f = gaussian_like(y_f, self.generator, "image")
        out_f = self.net(x_f)
        forget = l1(out_f, r_f)
        loss = forget
        logs = {
            "target_l1": float(forget.detach()),
            "forget_l1": float(l1(out_f.detach(), y_f)),
            "forget_psnr": psnr_mean(out_f, y_f),
        }
        if retain_batch is not None and self.cfg.w_r != 0:
            retain = self.retain_l1(retain_batch)
            loss = loss + self.cfg.w_r * retain
            logs["retain_l1"] = float(retain.detach())
        return {"loss": loss, **logs}
