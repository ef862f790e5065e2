"""SalUn (Fan et al., ICLR 2024): another method's update restricted to the salient weights.

Saliency is computed once, on a forget batch, from the gradient of the forget loss
``g = grad_theta L1(N(x_f), y_f)``: ``mask = |g| >= t`` with ``t`` the global threshold keeping the
top ``keep_ratio`` of weights (0.5, SalUn's median). The wrapped method (``base``, default
``random-target``: SalUn's random labelling with a retain term) then runs unchanged, except that
its gradients are multiplied by the mask.

How the loop must call it:

1. ``method.prepare(forget_batch, retain_batch)`` once before the first step: computes the mask
   and registers gradient hooks on the parameters (every backward pass is then masked). If the
   loop forgets, the first ``loss()`` call prepares from its forget batch.
2. Each step as usual: ``loss()``, ``backward()``, ``optimizer.step()``. A loop that accumulates
   or rewrites gradients outside autograd (e.g. a custom all-reduce) may call ``apply_mask()``
   just before ``optimizer.step()``; masking twice is harmless (the mask is 0/1).
3. ``remove_hooks()`` when done, if the model lives on.

Use an optimiser without weight decay (``default_optim`` has it at 0): decay would move the
masked weights too. Retrain-like target: whatever the wrapped method defines.

Example:
    >>> import torch
    >>> from forgetir.methods import create_method
    >>> from forgetir.models import create_model
    >>> m = create_method("salun", create_model("promptir-tiny"))
    >>> b = {"degraded": torch.rand(2, 3, 16, 16), "clean": torch.rand(2, 3, 16, 16)}
    >>> m.prepare(b, b)
    >>> 0.45 < m.mask_fraction() < 0.55
    True
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from forgetir.config import ConfigError
from forgetir.methods.base import Batch, MethodConfig, UnlearningMethod, l1
from forgetir.methods.masking import GradientMask
from forgetir.methods.registry import get_method, list_methods, register_method

_NOT_WRAPPABLE = ("salun", "retrain")


@dataclass
class SalUnConfig(MethodConfig):
    base: str = "random-target"  # the wrapped method
    keep_ratio: float = 0.5  # fraction of weights (largest |grad|) left free to move
    base_overrides: dict[str, Any] = field(default_factory=dict)  # the wrapped method's config

    def __post_init__(self) -> None:
        if not 0.0 < self.keep_ratio <= 1.0:
            raise ConfigError(f"keep_ratio must be in (0, 1], got {self.keep_ratio}")
        valid = [m for m in list_methods() if m not in _NOT_WRAPPABLE]
        if self.base not in valid:
            raise ConfigError(f"base {self.base!r} cannot be wrapped; valid: {', '.join(valid)}")


@register_method("salun")
class SalUn(GradientMask, UnlearningMethod):
    """Weight-saliency mask from the forget-loss gradient applied to a wrapped method."""

    name = "salun"
    summary = (
        "mask = |grad L1(N(x_f), y_f)| >= top-50% threshold (once); then the base method's "
        "update times the mask (Fan et al. 2024; base: random-target)"
    )
    Config = SalUnConfig
    retrain_like = "as the wrapped method defines it"

    def __init__(
        self,
        model: nn.Module,
        original: nn.Module | None = None,
        cfg: Any = None,
        target: str = "collapse",
        generator: torch.Generator | None = None,
        reference: nn.Module | None = None,
    ) -> None:
        super().__init__(model, original, cfg, target, generator, reference)
        self.base = get_method(self.cfg.base)(
            model,
            original=self.original,
            cfg=dict(self.cfg.base_overrides),
            target=target,
            generator=self.generator,
            reference=self.reference,
        )
        self.needs_forget = True
        self.needs_retain = self.base.needs_retain
        self.default_optim = {**self.base.default_optim, "weight_decay": 0.0}
        self.recommended_schedule = dict(self.base.recommended_schedule)
        self.masks: list[torch.Tensor] | None = None
        self._params: list[nn.Parameter] = []
        self._handles: list[Any] = []

    def trainable_parameters(self) -> list[nn.Parameter]:
        return self.base.trainable_parameters()

    @torch.no_grad()
    def _threshold(self, grads: list[torch.Tensor]) -> torch.Tensor:
        flat = torch.cat([g.abs().flatten().float() for g in grads])
        keep = math.ceil(self.cfg.keep_ratio * flat.numel())
        # k-th largest = (n - keep + 1)-th smallest; kthvalue has no size limit unlike quantile.
        return flat.kthvalue(flat.numel() - keep + 1).values

    def compute_mask(self, forget_batch: Batch | None) -> list[torch.Tensor]:
        """The 0/1 saliency masks (one per trainable parameter) from one forget batch."""
        x_f, y_f = self.forget_pair(forget_batch)
        params = self.trainable_parameters()
        loss = l1(self.model(x_f), y_f)
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        grads = [
            torch.zeros_like(p) if g is None else g for p, g in zip(params, grads, strict=True)
        ]
        t = self._threshold(grads)
        self._params = params
        return [(g.abs() >= t).to(p.dtype) for p, g in zip(params, grads, strict=True)]

    def prepare(self, forget_batch: Batch | None, retain_batch: Batch | None) -> None:
        """Compute the mask from ``forget_batch`` and hook it onto the parameters' gradients."""
        self.remove_hooks()  # the saliency gradients must not pass through an old mask
        self.set_masks(self.compute_mask(forget_batch))
        self.base.prepare(forget_batch, retain_batch)

    def apply_mask(self) -> None:
        """Multiply the parameters' current ``.grad`` by the mask, in place."""
        if self.masks is None:
            raise RuntimeError("salun: call prepare(forget_batch, retain_batch) first")
        for p, m in zip(self._params, self.masks, strict=True):
            if p.grad is not None:
                p.grad.mul_(m)

    def _loss(self, forget_batch: Batch | None, retain_batch: Batch | None) -> dict[str, Any]:
        if self.masks is None:
            self.prepare(forget_batch, retain_batch)
        return self.base.loss(forget_batch, retain_batch, model=self._net)

    def should_stop(self, logs: dict[str, Any]) -> str | None:
        return self.base.should_stop(logs)

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out["base"] = self.base.describe()
        return out
