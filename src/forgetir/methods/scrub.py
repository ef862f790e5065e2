"""SCRUB (Kurmanji et al., NeurIPS 2023), with L1 between outputs in place of the KL divergence.

The student N starts from the original N0 (the frozen teacher) and alternates:

- max step (on D_f): ``L = -L1(N(x_f), N0(x_f))``, move away from the teacher;
- min step (on D_r): ``L = gamma * L1(N(x_r), y_r) + alpha * L1(N(x_r), N0(x_r))``, stay close
  to the teacher and the targets.

The loop calls ``loss()`` once per step, so the method keeps its own step counter: step k is a
max step when ``k % max_every == 0`` and fewer than ``max_steps`` max steps were made (SCRUB does
max passes only in its first ``msteps`` epochs: set ``max_steps`` to the forget-set steps of
those epochs; None never stops them), otherwise a min step. Defaults are the released code's
(gamma 0.99, alpha 0.001, SGD lr 5e-4, momentum 0.9, weight decay 5e-4, msteps 2 of 3 epochs).
The loop should pass both batches every step; each step uses only the one its phase needs.
Retrain-like target: not supported (SCRUB is defined by moving away from the teacher on D_f).

Example:
    >>> import torch
    >>> from forgetir.methods import create_method
    >>> from forgetir.models import create_model
    >>> m = create_method("scrub", create_model("promptir-tiny"))
    >>> b = {"degraded": torch.rand(1, 3, 16, 16), "clean": torch.rand(1, 3, 16, 16)}
    >>> m.loss(b, b)["max_step"], m.loss(b, b)["max_step"]
    (1.0, 0.0)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from forgetir.config import NON_NEGATIVE, ConfigError
from forgetir.methods.base import Batch, ForgetStopConfig, UnlearningMethod, l1, psnr_mean
from forgetir.methods.registry import register_method


@dataclass
class ScrubConfig(ForgetStopConfig):
    RANGES = {"gamma": NON_NEGATIVE, "alpha": NON_NEGATIVE}
    gamma: float = 0.99  # retain task-loss weight (min step)
    alpha: float = 0.001  # distillation weight towards the teacher on D_r (min step)
    max_every: int = 2  # a max step every `max_every` steps (2: alternate by parity)
    max_steps: int | None = None  # total max steps allowed; None: no limit

    def __post_init__(self) -> None:
        if self.max_every < 1:
            raise ConfigError(f"max_every must be >= 1, got {self.max_every}")
        if self.max_steps is not None and self.max_steps < 0:
            raise ConfigError(f"max_steps must be >= 0 or null, got {self.max_steps}")


@register_method("scrub")
class Scrub(UnlearningMethod):
    """Alternating max (forget, away from the teacher) / min (retain) steps."""

    name = "scrub"
    summary = (
        "max step: L = -L1(N(x_f), N0(x_f)); min step: "
        "L = gamma*L1(N(x_r), y_r) + alpha*L1(N(x_r), N0(x_r)) (Kurmanji et al. 2023)"
    )
    Config = ScrubConfig
    default_optim = {"name": "sgd", "lr": 5e-4, "momentum": 0.9, "weight_decay": 5e-4}
    recommended_schedule = {"epochs": 3, "max_epochs": 2, "note": "lr x0.1 at epochs 3, 5, 9"}
    retrain_like = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_steps_done = 0

    def is_max_step(self) -> bool:
        """Whether the next call to ``loss`` is a max step."""
        limit = self.cfg.max_steps
        within = limit is None or self.max_steps_done < limit
        return within and self.step % self.cfg.max_every == 0

    def _loss(self, forget_batch: Batch | None, retain_batch: Batch | None) -> dict[str, Any]:
        if self.is_max_step():
            x_f, y_f = self.forget_pair(forget_batch)
            out_f = self.net(x_f)
            with torch.no_grad():
                teacher = self.original(x_f)
            away = l1(out_f, teacher)
            self.max_steps_done += 1
            return {
                "loss": -away,
                "max_step": 1.0,
                "teacher_l1": float(away.detach()),
                "forget_l1": float(l1(out_f.detach(), y_f)),
                "forget_psnr": psnr_mean(out_f, y_f),
            }
        x_r, y_r = self.retain_pair(retain_batch)
        out_r = self.net(x_r)
        with torch.no_grad():
            teacher = self.original(x_r)
        task = l1(out_r, y_r)
        distill = l1(out_r, teacher)
        return {
            "loss": self.cfg.gamma * task + self.cfg.alpha * distill,
            "max_step": 0.0,
            "retain_l1": float(task.detach()),
            "distill_l1": float(distill.detach()),
        }
