"""Bad teacher (Chundawat et al., AAAI 2023): distil from an incompetent teacher on D_f and from
the original (competent) model on D_r, with L1 between outputs in place of the KL divergence::

    L = w_f * L1(N(x_f), T_bad(x_f)) + w_r * L1(N(x_r), N0(x_r))

The incompetent teacher is a freshly initialised model of the same registered spec, frozen,
seeded from the method's generator. Note: PromptIR and AdaIR add the input to their output
(global residual), so a random teacher returns roughly ``x_f`` plus small noise: for them the
collapse target is close to the retrain-like one. Defaults after the paper: Adam lr 1e-4, one
epoch on D_f plus 30% of D_r.

Retrain-like target: the teacher on D_f is UT: ``reference(x_f)`` when a reference model is
given, else the identity ``x_f``.

Example:
    >>> import torch
    >>> from forgetir.methods import create_method
    >>> from forgetir.models import create_model
    >>> m = create_method("bad-teacher", create_model("promptir-tiny"))
    >>> b = {"degraded": torch.rand(1, 3, 16, 16), "clean": torch.rand(1, 3, 16, 16)}
    >>> sorted(m.loss(b, b))
    ['forget_l1', 'forget_psnr', 'loss', 'retain_teacher_l1', 'teacher_l1']
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from forgetir.config import NON_NEGATIVE
from forgetir.methods.base import (
    Batch,
    ForgetStopConfig,
    UnlearningMethod,
    freeze,
    fresh_init,
    l1,
    psnr_mean,
    require,
)
from forgetir.methods.registry import register_method


@dataclass
class BadTeacherConfig(ForgetStopConfig):
    RANGES = {"w_f": NON_NEGATIVE, "w_r": NON_NEGATIVE}
    w_f: float = 1.0  # weight of distillation from the incompetent teacher on D_f
    w_r: float = 1.0  # weight of distillation from the original model on D_r


@register_method("bad-teacher")
class BadTeacher(UnlearningMethod):
    """Student distilled from a random teacher on forget data, the original on retain data."""

    name = "bad-teacher"
    summary = (
        "L = w_f*L1(N(x_f), T_rand(x_f)) + w_r*L1(N(x_r), N0(x_r)), T_rand a fresh random init "
        "(Chundawat et al. 2023)"
    )
    Config = BadTeacherConfig
    default_optim = {"name": "adam", "lr": 1e-4, "betas": [0.9, 0.999], "weight_decay": 0.0}
    recommended_schedule = {"epochs": 1, "retain_fraction": 0.3}
    retrain_like = "the teacher on D_f is UT: reference(x_f), else the identity x_f"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.needs_retain = self.cfg.w_r != 0
        self.bad_teacher = (
            freeze(fresh_init(self.model, self.generator)) if self.target == "collapse" else None
        )

    @torch.no_grad()
    def forget_teacher(self, x_f: torch.Tensor) -> torch.Tensor:
        if self.bad_teacher is not None:
            return self.bad_teacher(x_f)
        return self.retrain_like_target(x_f)

    def _loss(self, forget_batch: Batch | None, retain_batch: Batch | None) -> dict[str, Any]:
        x_f, y_f = self.forget_pair(forget_batch)
        out_f = self.net(x_f)
        forget = l1(out_f, self.forget_teacher(x_f))
        loss = self.cfg.w_f * forget
        logs = {
            "teacher_l1": float(forget.detach()),
            "forget_l1": float(l1(out_f.detach(), y_f)),
            "forget_psnr": psnr_mean(out_f, y_f),
        }
        if retain_batch is not None and self.cfg.w_r != 0:
            x_r = require(retain_batch, "degraded", self.name, "retain")
            with torch.no_grad():
                good = self.original(x_r)
            retain = l1(self.net(x_r), good)
            loss = loss + self.cfg.w_r * retain
            logs["retain_teacher_l1"] = float(retain.detach())
        return {"loss": loss, **logs}
