"""The engine's optimiser and learning-rate schedule (linear warm-up, then cosine or constant)."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn

from forgetir.config import ConfigError, OptimConfig


def lr_at(step: int, optim: OptimConfig, total_steps: int) -> float:
    """Learning rate for the update that follows ``step`` completed updates.

    Linear warm-up over ``warmup_steps`` (reaching ``lr`` on the last warm-up step), then
    ``constant`` or a half cosine from ``lr`` down to ``min_lr`` at ``decay_steps``
    (``total_steps`` when unset); flat at ``min_lr`` past it.

    Example:
        >>> o = OptimConfig(lr=1.0, warmup_steps=2, min_lr=0.0)
        >>> [round(lr_at(s, o, 6), 3) for s in range(6)]
        [0.5, 1.0, 1.0, 0.854, 0.5, 0.146]
    """
    warm = optim.warmup_steps
    if step < warm:
        return optim.lr * (step + 1) / warm
    if optim.schedule == "constant":
        return optim.lr
    if optim.schedule != "cosine":
        raise ConfigError(
            f"optim.schedule: invalid value {optim.schedule!r}; valid: cosine, constant"
        )
    end = optim.decay_steps if optim.decay_steps is not None else total_steps
    progress = min(1.0, (step - warm) / max(1, end - warm))
    return optim.min_lr + (optim.lr - optim.min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set every parameter group's learning rate to ``lr``."""
    for group in optimizer.param_groups:
        group["lr"] = lr


def build_optimizer(params: Iterable[nn.Parameter], optim: OptimConfig) -> torch.optim.Optimizer:
    """AdamW, Adam or SGD (with ``optim.momentum``; SCRUB's optimiser) as configured.

    Example:
        >>> opt = build_optimizer(nn.Linear(2, 2).parameters(), OptimConfig(name="adam"))
        >>> type(opt).__name__
        'Adam'
    """
    if optim.name == "sgd":
        return torch.optim.SGD(
            params, lr=optim.lr, momentum=optim.momentum, weight_decay=optim.weight_decay
        )
    if len(optim.betas) != 2:
        raise ConfigError(f"optim.betas: expected two numbers, got {optim.betas!r}")
    kwargs = dict(lr=optim.lr, betas=tuple(optim.betas), weight_decay=optim.weight_decay)
    if optim.name == "adamw":
        return torch.optim.AdamW(params, **kwargs)
    if optim.name == "adam":
        return torch.optim.Adam(params, **kwargs)
    raise ConfigError(f"optim.name: invalid value {optim.name!r}; valid: adamw, adam, sgd")
