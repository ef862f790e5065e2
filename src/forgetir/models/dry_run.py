"""A dry batch through a user's model before any work: the checks that turn a misbehaving
``--model-module`` factory into one clear error instead of a traceback mid-run.

A restoration model here maps a (B, 3, H, W) float batch to a tensor of the same shape, dtype
and device, finite, and has parameters to unlearn. A factory that raises, or a model that
returns a tuple, another size (a stride, other channels), NaN, or moves the batch elsewhere, is
refused naming the module and what was wrong.

Example:
    >>> import torch
    >>> check_restoration_model(torch.nn.Conv2d(3, 3, 3, padding=1), "net.py:build")
    >>> try:
    ...     check_restoration_model(torch.nn.Conv2d(3, 3, 3, stride=2), "net.py:build")
    ... except InvalidInputError as e:
    ...     print(str(e)[:76])
    net.py:build: the model maps a (1, 3, 32, 32) batch to a tensor of shape (1,
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from forgetir.errors import InvalidInputError

# The dry batch's side: small (cheap) but above the size multiples of U-shaped models.
DRY_SIDE = 32


def check_restoration_model(model: Any, label: str) -> None:
    """Refuse ``model`` unless it is an ``nn.Module`` with trainable parameters that maps a
    (1, 3, H, W) batch in [0, 1] to a finite tensor of that shape, dtype and device (H, W: a
    multiple of its ``size_multiple``). ``label`` names the code in the message."""
    if not isinstance(model, nn.Module):
        raise InvalidInputError(
            f"{label}: the factory returned a {type(model).__name__}, not a torch.nn.Module"
        )
    if not any(p.requires_grad for p in model.parameters()):
        raise InvalidInputError(
            f"{label}: the model has no trainable parameters: there is nothing to unlearn"
        )
    param = next(model.parameters())
    if param.is_meta:  # built without storage, weights loaded next: nothing to run yet
        return
    multiple = max(1, int(getattr(model, "size_multiple", 1) or 1))
    side = multiple * math.ceil(DRY_SIDE / multiple)
    generator = torch.Generator().manual_seed(0)  # leaves the global RNG stream alone
    x = torch.rand(1, 3, side, side, generator=generator).to(param.device)
    shape = tuple(x.shape)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            y = model(x)
    except Exception as exc:  # the user's code failing on a plain image batch
        raise InvalidInputError(
            f"{label}: the model fails on a {shape} image batch: {type(exc).__name__}: {exc}"
        ) from exc
    finally:
        model.train(was_training)
    _check_output(y, x, label)


def _check_output(y: Any, x: torch.Tensor, label: str) -> None:
    shape = tuple(x.shape)
    need = f"forgetir needs one tensor of the input's shape {shape}"
    if not isinstance(y, torch.Tensor):
        raise InvalidInputError(
            f"{label}: the model returns a {type(y).__name__} for a {shape} batch; {need}"
        )
    if tuple(y.shape) != shape:
        raise InvalidInputError(
            f"{label}: the model maps a {shape} batch to a tensor of shape {tuple(y.shape)}; "
            f"{need} (3 channels, no stride)"
        )
    if y.dtype != x.dtype or y.device != x.device:
        raise InvalidInputError(
            f"{label}: the model returns {y.dtype} on {y.device} for a {x.dtype} batch on "
            f"{x.device}; it must keep the input's dtype and device"
        )
    if not torch.isfinite(y).all():
        raise InvalidInputError(
            f"{label}: the model's output for a {shape} batch in [0, 1] is not finite (NaN or "
            "inf) at initialisation"
        )


def checked_factory(factory: Callable[..., Any], label: str) -> Callable[..., nn.Module]:
    """``factory`` whose every model passes :func:`check_restoration_model`; an exception in
    the factory itself becomes the same error family (signature kept for the registry)."""

    @functools.wraps(factory)
    def build(*args: Any, **kwargs: Any) -> nn.Module:
        try:
            model = factory(*args, **kwargs)
        except InvalidInputError:
            raise
        except Exception as exc:
            raise InvalidInputError(
                f"{label}: the factory raised {type(exc).__name__}: {exc}"
            ) from exc
        check_restoration_model(model, label)
        return model

    return build
