"""Fine-tune on the retain data only: the simplest baseline (forgetting by catastrophic drift).

``L = L1(N(x_r), y_r)`` from the original weights. Forget data is never used, so both targets
are accepted and leave the loss unchanged.

Example:
    >>> import torch
    >>> from forgetir.methods import create_method
    >>> from forgetir.models import create_model
    >>> m = create_method("finetune", create_model("promptir-tiny"))
    >>> b = {"degraded": torch.rand(1, 3, 16, 16), "clean": torch.rand(1, 3, 16, 16)}
    >>> float(m.loss(None, b)["loss"]) > 0
    True
"""

from __future__ import annotations

from typing import Any

from forgetir.methods.base import Batch, MethodConfig, UnlearningMethod
from forgetir.methods.registry import register_method


@register_method("finetune")
class Finetune(UnlearningMethod):
    """L1 on the retain data, starting from the trained weights."""

    name = "finetune"
    summary = "L = L1(N(x_r), y_r) on D_r only, from the trained weights"
    Config = MethodConfig
    needs_forget = False
    default_optim = {"name": "adam", "lr": 2e-4, "betas": [0.9, 0.999], "weight_decay": 0.0}
    retrain_like = "unchanged: forget data is never used (forgetting only by drift)"

    def _loss(self, forget_batch: Batch | None, retain_batch: Batch | None) -> dict[str, Any]:
        retain = self.retain_l1(retain_batch)
        return {"loss": retain, "retain_l1": float(retain.detach())}
