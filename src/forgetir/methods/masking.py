"""Gradient masks shared by the saliency methods (``salun``, ``proxy-retrain``): a 0/1 mask per
trainable parameter, applied to its gradient by a hook, so only the masked weights move.

Example:
    >>> import torch
    >>> from torch import nn
    >>> class Toy(GradientMask):
    ...     def __init__(self, params):
    ...         self._params, self.masks, self._handles = params, None, []
    >>> w = nn.Parameter(torch.ones(4))
    >>> toy = Toy([w])
    >>> toy.set_masks([torch.tensor([1.0, 0.0, 1.0, 0.0])])
    >>> (w * torch.arange(4.0)).sum().backward()
    >>> w.grad.tolist(), toy.mask_fraction()
    ([0.0, 0.0, 2.0, 0.0], 0.5)
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class GradientMask:
    """Mixin: ``masks`` (one per entry of ``_params``) hooked onto the gradients."""

    _params: list[nn.Parameter]
    masks: list[torch.Tensor] | None
    _handles: list[Any]

    def set_masks(self, masks: list[torch.Tensor]) -> None:
        """Replace the masks and hook them onto the parameters' gradients."""
        self.remove_hooks()
        self.masks = masks
        for p, m in zip(self._params, masks, strict=True):
            self._handles.append(p.register_hook(lambda g, m=m: g * m))

    def remove_hooks(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def mask_fraction(self) -> float:
        """Fraction of trainable weights free to move (after ``prepare``)."""
        if self.masks is None:
            name = getattr(self, "name", type(self).__name__)
            raise RuntimeError(f"{name}: call prepare(forget_batch, retain_batch) first")
        return sum(float(m.sum()) for m in self.masks) / sum(m.numel() for m in self.masks)
