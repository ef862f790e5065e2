"""Retrain from scratch on the retain data: UT, the gold standard every method is judged by.

On construction the model's weights are replaced by a fresh initialisation of the same registered
spec (``create_model(model.forgetir_spec["name"], **args)``), seeded from the method's generator;
``original`` keeps the weights from before. Then ``L = L1(N(x_r), y_r)``. It is a method only so
that the same loop trains it; forget data is never used, so both targets are accepted and mean
the same thing (UT is retrain-like by definition).

Example:
    >>> import torch
    >>> from forgetir.methods import create_method
    >>> from forgetir.models import create_model
    >>> m = create_method("retrain", create_model("promptir-tiny"))
    >>> b = {"degraded": torch.rand(1, 3, 16, 16), "clean": torch.rand(1, 3, 16, 16)}
    >>> sorted(m.loss(None, b))
    ['loss', 'retain_l1']
"""

from __future__ import annotations

from typing import Any

from forgetir.methods.base import Batch, MethodConfig, UnlearningMethod, fresh_init
from forgetir.methods.registry import register_method


@register_method("retrain")
class Retrain(UnlearningMethod):
    """Re-initialise the model, then train it with L1 on the retain data only."""

    name = "retrain"
    summary = "re-initialise N, then L = L1(N(x_r), y_r) on D_r only (UT, the gold standard)"
    Config = MethodConfig
    needs_forget = False
    # The official PromptIR training recipe (design.md §4).
    default_optim = {"name": "adamw", "lr": 2e-4, "betas": [0.9, 0.999], "weight_decay": 0.01}
    recommended_schedule = {
        "epochs": 120,
        "warmup_epochs": 15,
        "schedule": "cosine",
        "batch_size": 32,
        "patch_size": 128,
    }
    retrain_like = "UT itself: forget data is never seen"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        fresh = fresh_init(self.model, self.generator)
        self.model.load_state_dict(fresh.state_dict())

    def _loss(self, forget_batch: Batch | None, retain_batch: Batch | None) -> dict[str, Any]:
        retain = self.retain_l1(retain_batch)
        return {"loss": retain, "retain_l1": float(retain.detach())}
